#include "agent/daemon/notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <cstring>

namespace lab::agent::daemon {
namespace {

template <class T>
std::optional<T> env_number(const char* name) noexcept {
  const char* text = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read-only environment
  if (text == nullptr || *text == '\0')
    return std::nullopt;
  T value{};
  const char* end = text + std::strlen(text);
  const auto [ptr, ec] = std::from_chars(text, end, value);
  if (ec != std::errc() || ptr != end)
    return std::nullopt;
  return value;
}

}  // namespace

bool notify(std::string_view state) noexcept {
  const char* path = std::getenv("NOTIFY_SOCKET");  // NOLINT(concurrency-mt-unsafe)
  if (path == nullptr || path[0] == '\0')
    return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::size_t len = std::strlen(path);
  if (len >= sizeof addr.sun_path || (path[0] != '/' && path[0] != '@'))
    return false;
  std::memcpy(addr.sun_path, path, len);
  if (path[0] == '@')
    addr.sun_path[0] = '\0';  // abstract namespace
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return false;
  const auto addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
  const ssize_t sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                                reinterpret_cast<const sockaddr*>(&addr), addr_len);
  ::close(fd);
  return sent == static_cast<ssize_t>(state.size());
}

std::optional<std::chrono::microseconds> watchdog_interval() noexcept {
  const auto usec = env_number<std::uint64_t>("WATCHDOG_USEC");
  if (!usec || *usec == 0)
    return std::nullopt;
  if (const auto pid = env_number<pid_t>("WATCHDOG_PID"); pid && *pid != ::getpid())
    return std::nullopt;
  return std::chrono::microseconds(*usec);
}

}  // namespace lab::agent::daemon
