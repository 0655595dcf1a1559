// TCP checks: resolve, then a non-blocking connect to each address in turn, all within the
// deadline. Nothing is sent: an established connection is the pass.
#include "agent/checks/kinds.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace lab::agent::checks::detail {
namespace {

struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;
};

// A lookup that may outlive the check: getaddrinfo has no timeout of its own (a dead resolver
// holds it for resolv.conf's timeout × attempts), so it runs on a thread of its own and the
// check stops waiting at the deadline. Whoever finishes last frees this.
struct Lookup {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  int rc = 0;
  int error = 0;  // errno for EAI_SYSTEM
  std::vector<Address> addresses;
};

void collect(const addrinfo* list, std::vector<Address>& out) {
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof(sockaddr_storage))
      continue;
    Address a;
    std::memcpy(&a.storage, ai->ai_addr, ai->ai_addrlen);
    a.length = ai->ai_addrlen;
    out.push_back(a);
  }
}

int resolve_into(const std::string& host, const std::string& port, int flags,
                 std::vector<Address>& out, int& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = flags | AI_NUMERICSERV;
  addrinfo* list = nullptr;
  const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &list);
  error = errno;
  if (rc == 0) {
    collect(list, out);
    freeaddrinfo(list);
  }
  return rc;
}

std::string gai_text(int rc, int error) {
  return rc == EAI_SYSTEM ? errno_text(error) : one_line(gai_strerror(rc));
}

// The addresses of `host`, or a reason in `reason`.
std::vector<Address> resolve(const Spec& spec, Clock::time_point deadline, std::string& reason) {
  const std::string port = std::to_string(spec.port);
  std::vector<Address> addresses;
  int error = 0;
  // An IP address needs no lookup and no thread.
  int rc = resolve_into(spec.host, port, AI_NUMERICHOST, addresses, error);
  if (rc == 0)
    return addresses;
  if (rc != EAI_NONAME) {
    reason = "host: " + gai_text(rc, error);
    return {};
  }
  auto lookup = std::make_shared<Lookup>();
  std::thread([lookup, host = spec.host, port] {
    std::vector<Address> found;
    int lookup_error = 0;
    const int lookup_rc = resolve_into(host, port, AI_ADDRCONFIG, found, lookup_error);
    const std::lock_guard lock(lookup->mutex);
    lookup->rc = lookup_rc;
    lookup->error = lookup_error;
    lookup->addresses = std::move(found);
    lookup->done = true;
    lookup->done_cv.notify_all();
  }).detach();
  std::unique_lock lock(lookup->mutex);
  if (!lookup->done_cv.wait_until(lock, deadline, [&] { return lookup->done; })) {
    reason = "timed out after " + timeout_text(spec.timeout) + " resolving " + spec.host;
    return {};
  }
  if (lookup->rc != 0) {
    reason = "host: " + gai_text(lookup->rc, lookup->error);
    return {};
  }
  if (lookup->addresses.empty())
    reason = "host: no address";
  return std::move(lookup->addresses);
}

std::string address_text(const Address& a) {
  char text[INET6_ADDRSTRLEN] = {};
  if (a.storage.ss_family == AF_INET6) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, &a.storage, sizeof in6);
    inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text);
    return std::string("[") + text + "]:" + std::to_string(ntohs(in6.sin6_port));
  }
  sockaddr_in in4{};
  std::memcpy(&in4, &a.storage, sizeof in4);
  inet_ntop(AF_INET, &in4.sin_addr, text, sizeof text);
  return std::string(text) + ":" + std::to_string(ntohs(in4.sin_port));
}

enum class Connect { established, failed, timed_out };

// One non-blocking connect, waited for until `deadline`; `error` is set when it failed.
Connect connect_one(const Address& a, Clock::time_point deadline, int& error) {
  const Fd sock(::socket(a.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!sock.valid()) {
    error = errno;
    return Connect::failed;
  }
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
  if (::connect(sock.get(), reinterpret_cast<const sockaddr*>(&a.storage), a.length) == 0)
    return Connect::established;
  if (errno != EINPROGRESS) {
    error = errno;
    return Connect::failed;
  }
  for (;;) {
    const int wait_ms = poll_timeout(deadline);
    if (wait_ms == 0)
      return Connect::timed_out;
    pollfd p{sock.get(), POLLOUT, 0};
    const int n = ::poll(&p, 1, wait_ms);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      error = errno;
      return Connect::failed;
    }
    if (n == 0)
      continue;  // the loop's deadline check decides
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &so_error, &len) != 0)
      so_error = errno;
    if (so_error == 0)
      return Connect::established;
    error = so_error;
    return Connect::failed;
  }
}

}  // namespace

Outcome run_tcp(const Spec& spec, Clock::time_point deadline) {
  Outcome out;
  const std::vector<Address> addresses = resolve(spec, deadline, out.reason);
  if (addresses.empty())
    return out;
  // Every address in turn (a name often has an IPv6 and an IPv4 address and the service
  // listens on one of them); the reason is that of the last one tried.
  int error = 0;
  for (const Address& a : addresses) {
    switch (connect_one(a, deadline, error)) {
      case Connect::established:
        out.passed = true;
        out.reason = "connected to " + address_text(a);
        return out;
      case Connect::timed_out:
        out.reason = "timed out after " + timeout_text(spec.timeout);
        return out;
      case Connect::failed:
        break;
    }
  }
  out.reason = "connect: " + errno_text(error);
  return out;
}

}  // namespace lab::agent::checks::detail
