#pragma once
// The service manager's notification protocol (sd_notify(3)): one datagram per message to the
// unix socket named by $NOTIFY_SOCKET, and the watchdog interval from $WATCHDOG_USEC.
//
// Why not libsystemd: labd needs these two calls only, and libsystemd brings gcrypt,
// gpg-error, zstd, lzma, lz4 and cap with it, about 1 MiB of resident mappings in an agent that
// must stay small. The protocol is documented as stable by systemd.

#include <chrono>
#include <optional>
#include <string_view>

namespace lab::agent::daemon {

/// Sends `state` ("READY=1", "STATUS=…") when $NOTIFY_SOCKET is set ('@' for an abstract
/// socket); false when it is not set or the send fails. Never blocks for long: one datagram.
bool notify(std::string_view state) noexcept;

/// The watchdog interval asked for with $WATCHDOG_USEC, when $WATCHDOG_PID is unset or names
/// this process; nullopt otherwise.
std::optional<std::chrono::microseconds> watchdog_interval() noexcept;

}  // namespace lab::agent::daemon
