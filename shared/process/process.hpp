#pragma once
// Running a helper program (sfdisk, mke2fs, grub-install) and judging its exit: argv only, never
// a shell; a clean environment; its output kept (the tail) for the error a person reads.

#include "shared/errors/error.hpp"

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace lab::shared::process {

enum class ProcessError {
  spawn_failed = 1,  // pipe, fork or exec failed (a missing program is this)
  timed_out,         // killed at the deadline
  failed,            // exited non-zero or was killed by a signal
};
const boost::system::error_category& process_category() noexcept;
inline boost::system::error_code make_error_code(ProcessError e) noexcept {
  return {static_cast<int>(e), process_category()};
}

struct RunOptions {
  /// chroot(2) into this directory before exec (empty: none); the program is looked up in it.
  std::filesystem::path root;
  /// Killed with its whole process group at this point (zero: no deadline).
  std::chrono::milliseconds timeout{0};
  /// The last bytes of standard output and error (interleaved as written) kept in Outcome.
  std::size_t keep_output = std::size_t{16} * 1024;
  /// The environment, "NAME=value" each; PATH from it is where the program is looked up.
  std::vector<std::string> env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"};
  /// Written to standard input, which is then closed; empty: /dev/null. At most 64 KiB (a
  /// pipe's buffer), so a program that writes before it reads cannot block on it.
  std::string input;
};

struct Outcome {
  int status = -1;  // exit status, -1 when killed by a signal
  int signal = 0;   // the signal that ended it, 0 when it exited
  std::string output;
  [[nodiscard]] bool ok() const noexcept { return status == 0; }
};

/// Runs `argv` (argv[0] found on the PATH of `options.env`, or a path) and waits for it. An
/// error only when it could not be run or ran past its deadline; a non-zero exit is an Outcome.
Result<Outcome> run(std::span<const std::string> argv, const RunOptions& options = {});

/// As run(), and a non-zero exit or a signal is an error (ProcessError::failed) whose detail
/// names the program, how it ended and the last lines it printed. Returns its output.
Result<std::string> check_output(std::span<const std::string> argv, const RunOptions& options = {});

/// "sfdisk: exit status 1: <last line>" — how a finished run is described in errors.
std::string describe(std::span<const std::string> argv, const Outcome& outcome);

}  // namespace lab::shared::process

template <>
struct boost::system::is_error_code_enum<lab::shared::process::ProcessError> : std::true_type {};
