#pragma once
// Internals of agent/checks shared by its .cpp files: one runner per Kind and the few helpers
// they have in common. Not part of the library's interface.

#include "agent/checks/runner.hpp"

#include <unistd.h>

#include <chrono>
#include <string>
#include <string_view>
#include <utility>

namespace lab::agent::checks::detail {

using Clock = std::chrono::steady_clock;

/// Each runner gets a Spec that run() validated for its kind and the deadline of the whole
/// check; it fills everything of the Outcome but `duration`, and never throws on purpose
/// (run() still catches what allocation failures may throw).
Outcome run_command(const Spec& spec, Clock::time_point deadline);
Outcome run_http(const Spec& spec, Clock::time_point deadline);
Outcome run_tcp(const Spec& spec, Clock::time_point deadline);

/// "5s" for whole seconds, else "1500ms": how reasons name the timeout.
std::string timeout_text(std::chrono::milliseconds timeout);
/// strerror_r text starting in lower case, to read well after "connect: ".
std::string errno_text(int error);
/// `text` with its first letter in lower case and line breaks turned into spaces: library
/// messages made to fit the one-line reasons.
std::string one_line(std::string_view text);
/// Milliseconds from now until `deadline` for poll(): rounded up so that a poll never returns
/// just before the deadline and spins, 0 when it has passed.
int poll_timeout(Clock::time_point deadline);

/// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  [[nodiscard]] int get() const noexcept { return fd_; }
  [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
  void reset() noexcept {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

}  // namespace lab::agent::checks::detail
