#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace lab::pxe::tftp::engine {

/// Which read requests may start a transfer: at most `max_transfers` at once in all, and at most
/// `max_per_client` from one client address. Without the second limit one host takes every
/// slot: a transfer nobody acknowledges holds its slot for the whole retransmission schedule
/// (31 s with the default Settings), and a host can send a request from as many ports as it
/// likes. Only counts; the server keeps it under its own lock. Addresses are compared as given
/// ("10.0.0.5").
class Admission {
 public:
  enum class Verdict {
    admit,
    server_busy,  // max_transfers are running
    client_busy,  // max_per_client are running for this address
  };

  Admission(std::size_t max_transfers, std::size_t max_per_client) noexcept
      : max_transfers_(max_transfers), max_per_client_(max_per_client) {}

  /// Whether a request from `address` may start a transfer now. Nothing is counted until
  /// started(): a request that is refused later (no such file) takes no slot.
  [[nodiscard]] Verdict check(std::string_view address) const;
  /// A transfer for `address` started; it must have passed check().
  void started(std::string_view address);
  /// A transfer for `address` ended; it must have been started().
  void ended(std::string_view address);

  [[nodiscard]] std::size_t running() const noexcept { return total_; }
  [[nodiscard]] std::size_t running_from(std::string_view address) const;

 private:
  std::size_t max_transfers_;
  std::size_t max_per_client_;
  std::size_t total_ = 0;
  std::map<std::string, std::size_t, std::less<>> per_client_;  // only addresses with one running
};

}  // namespace lab::pxe::tftp::engine
