#include "tests/support/notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <stdexcept>

namespace lab::tests {

NotifySocket::NotifySocket(const std::filesystem::path& path)
    : fd_(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (fd_ < 0 || std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str()) <= 0 ||
      ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    throw std::runtime_error("cannot bind the notify socket " + path.string());
  }
  timeval tv{.tv_sec = 10, .tv_usec = 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

NotifySocket::~NotifySocket() {
  if (fd_ >= 0)
    ::close(fd_);
}

bool NotifySocket::receive_until(std::string_view wanted) {
  for (int i = 0; i < 50; ++i) {
    std::array<char, 512> buf{};
    const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    if (n <= 0)
      return false;
    if (std::string_view(buf.data(), static_cast<std::size_t>(n)) == wanted)
      return true;
  }
  return false;
}

}  // namespace lab::tests
