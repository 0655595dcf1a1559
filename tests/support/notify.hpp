#pragma once
// A stand-in for systemd's notification socket: a datagram socket a child process is pointed at
// with NOTIFY_SOCKET, to check what it tells the service manager (READY=1, WATCHDOG=1, ...).

#include <filesystem>
#include <string_view>

namespace lab::tests {

class NotifySocket {
 public:
  /// Binds a datagram socket at `path`; receives wait at most 10 s each.
  explicit NotifySocket(const std::filesystem::path& path);
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  /// True once a message equal to `wanted` arrives (at most 50 messages, 10 s each).
  bool receive_until(std::string_view wanted);

 private:
  int fd_ = -1;
};

}  // namespace lab::tests
