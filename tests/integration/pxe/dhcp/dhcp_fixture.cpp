#include "tests/integration/pxe/dhcp/dhcp_fixture.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace lab::tests::dhcp {
namespace {

// strerror is not thread-safe; the system category's message is.
std::string errno_text() {
  return std::error_code(errno, std::system_category()).message();
}

// Runs `fn` on a thread that has entered `ns`: sockets it creates belong to that namespace
// for their whole life, whichever thread uses them afterwards.
void in_netns(const NetNs& ns, const std::function<void()>& fn) {
  std::exception_ptr error;
  std::thread t([&] {
    try {
      const Fd nsfd(::open(("/var/run/netns/" + ns.name()).c_str(), O_RDONLY | O_CLOEXEC));
      if (nsfd.get() < 0 || ::setns(nsfd.get(), CLONE_NEWNET) != 0)
        throw std::runtime_error("setns " + ns.name() + ": " + errno_text());
      fn();
    } catch (...) {
      error = std::current_exception();
    }
  });
  t.join();
  if (error)
    std::rethrow_exception(error);
}

sockaddr_in sockaddr_of(const std::string& ip, std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (!ip.empty() && ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1)
    throw std::runtime_error("bad address " + ip);
  return a;
}

}  // namespace

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0)
    ::close(fd_);
}

ChildProcess start_lab(const NetNs& ns, const TempDir& dir, const std::string& toml,
                       std::string_view config_name) {
  // Only the DHCP server (and the boot recorder it reports to): no coordinator API.
  const auto cfg = dir.write(config_name, "[coordinator]\nenabled = false\n" + toml);
  auto lab =
      ChildProcess::start({.argv = {lab_binary().string(), "serve", "--data-dir",
                                    (dir.path() / "data").string(), "--config", cfg.string()},
                           .env = {},
                           .netns = ns.name(),
                           .log = {}});
  const bool ready = wait_until(
      [&] { return lab.output().find("msg=ready") != std::string::npos || !lab.running(); }, 20s);
  if (!ready || !lab.running())
    throw std::runtime_error("lab serve did not start:\n" + lab.output());
  return lab;
}

std::vector<std::string> journal_lines(const TempDir& dir) {
  std::vector<std::string> out;
  std::istringstream in(read_file(dir.path() / "data" / "dhcp-leases"));
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

Fd udp_socket_in(const NetNs& ns, const std::string& address, std::uint16_t port,
                 const std::string& device) {
  Fd out;
  in_netns(ns, [&] {
    Fd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0)
      throw std::runtime_error(std::string("socket: ") + errno_text());
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
    ::setsockopt(fd.get(), IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    if (!device.empty() && ::setsockopt(fd.get(), SOL_SOCKET, SO_BINDTODEVICE, device.c_str(),
                                        static_cast<socklen_t>(device.size())) != 0)
      throw std::runtime_error("SO_BINDTODEVICE " + device + ": " + errno_text());
    const auto local = sockaddr_of(address, port);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0)
      throw std::runtime_error("bind " + address + ":" + std::to_string(port) + ": " +
                               errno_text());
    out = std::move(fd);
  });
  return out;
}

Fd capture_socket_in(const NetNs& ns, const std::string& device, int buffer) {
  Fd out;
  in_netns(ns, [&] {
    Fd fd(::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_IP)));
    if (fd.get() < 0)
      throw std::runtime_error(std::string("packet socket: ") + errno_text());
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer) != 0)
      throw std::runtime_error(std::string("SO_RCVBUFFORCE: ") + errno_text());
    sockaddr_ll local{};
    local.sll_family = AF_PACKET;
    local.sll_protocol = htons(ETH_P_IP);
    local.sll_ifindex = static_cast<int>(::if_nametoindex(device.c_str()));
    if (local.sll_ifindex == 0)
      throw std::runtime_error("no interface " + device + " in " + ns.name());
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0)
      throw std::runtime_error("bind packet socket to " + device + ": " + errno_text());
    out = std::move(fd);
  });
  return out;
}

std::optional<wire::Message> dhcp_in_ip_packet(std::span<const std::uint8_t> packet,
                                               std::uint16_t port) {
  if (packet.size() < 20 || (packet[0] >> 4) != 4 || packet[9] != IPPROTO_UDP)
    return std::nullopt;
  const std::size_t ihl = static_cast<std::size_t>(packet[0] & 0x0f) * 4;
  if (ihl < 20 || packet.size() < ihl + 8)
    return std::nullopt;
  const auto udp = packet.subspan(ihl);
  if (((udp[2] << 8) | udp[3]) != port)
    return std::nullopt;
  auto m = wire::parse(udp.subspan(8));
  if (!m)
    return std::nullopt;
  return std::move(*m);
}

void send_raw(int fd, const std::vector<std::uint8_t>& bytes, const std::string& ip,
              std::uint16_t port) {
  const auto to = sockaddr_of(ip, port);
  if (::sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&to),
               sizeof to) < 0)
    throw std::runtime_error("sendto " + ip + ": " + errno_text());
}

void send_to(int fd, const wire::Message& m, const std::string& ip, std::uint16_t port) {
  auto bytes = wire::serialize(m);
  if (!bytes)
    throw std::runtime_error("serialize: " + bytes.error().message());
  send_raw(fd, *bytes, ip, port);
}

std::optional<Received> receive(int fd, std::chrono::milliseconds timeout,
                                const std::function<bool(const wire::Message&)>& accept) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::array<std::uint8_t, 2048> buf{};
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
      continue;
    sockaddr_in from{};
    socklen_t len = sizeof from;
    const ssize_t n =
        ::recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n <= 0)
      continue;
    auto m = wire::parse(std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(n)));
    if (!m || !accept(*m))
      continue;
    std::array<char, INET_ADDRSTRLEN> text{};
    ::inet_ntop(AF_INET, &from.sin_addr, text.data(), text.size());
    return Received{std::move(*m), text.data()};
  }
}

wire::Message client_message(wire::MessageType type, const std::array<std::uint8_t, 6>& mac,
                             std::uint32_t xid) {
  wire::Message m;
  m.op = 1;
  m.xid = xid;
  std::copy(mac.begin(), mac.end(), m.chaddr.begin());
  m.set(wire::opt::kMessageType, std::vector<std::uint8_t>{static_cast<std::uint8_t>(type)});
  return m;
}

wire::MessageType type_of(const wire::Message& m) {
  auto t = wire::message_type(m);
  return t && *t ? **t : wire::MessageType{};
}

Relay::Relay(const NetNs& ns, std::string client_device, std::string giaddr, std::string server)
    : client_device_(std::move(client_device)),
      giaddr_(std::move(giaddr)),
      server_(std::move(server)) {
  fd_ = udp_socket_in(ns, "", 67);
  in_netns(ns, [&] { client_ifindex_ = ::if_nametoindex(client_device_.c_str()); });
  if (client_ifindex_ == 0)
    throw std::runtime_error("no interface " + client_device_);
  thread_ = std::thread([this] { loop(); });
}

Relay::~Relay() {
  stop_ = true;
  thread_.join();
}

void Relay::loop() {
  const std::vector<std::uint8_t> circuit(client_device_.begin(), client_device_.end());
  std::array<std::uint8_t, 2048> buf{};
  while (!stop_) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0)
      continue;
    sockaddr_in from{};
    iovec iov{buf.data(), buf.size()};
    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(in_pktinfo))> control{};
    msghdr h{};
    h.msg_name = &from;
    h.msg_namelen = sizeof from;
    h.msg_iov = &iov;
    h.msg_iovlen = 1;
    h.msg_control = control.data();
    h.msg_controllen = control.size();
    const ssize_t n = ::recvmsg(fd_.get(), &h, 0);
    if (n <= 0)
      continue;
    int ifindex = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        in_pktinfo info{};
        std::memcpy(&info, CMSG_DATA(c), sizeof info);
        ifindex = info.ipi_ifindex;
      }
    }
    auto m = wire::parse(std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(n)));
    if (!m)
      continue;
    try {
      if (m->op == 1 && static_cast<unsigned>(ifindex) == client_ifindex_) {
        if (m->giaddr.is_zero())
          m->giaddr = *wire::Ipv4::parse(giaddr_);
        ++m->hops;
        std::vector<wire::Option> subs{{1, circuit}};
        m->set(wire::opt::kRelayAgentInfo, wire::serialize_suboptions(subs));
        send_to(fd_.get(), *m, server_, 67);
        ++forwarded_requests;
      } else if (m->op == 2) {
        if (const auto* o82 = m->find(wire::opt::kRelayAgentInfo); o82 != nullptr) {
          auto subs = wire::parse_suboptions(o82->data);
          if (subs && !subs->empty() && subs->front().code == 1 && subs->front().data == circuit)
            ++replies_with_option82;
          m->erase(wire::opt::kRelayAgentInfo);
        }
        auto bytes = wire::serialize(*m);
        if (!bytes)
          continue;
        // To the client: unicast when it has an address, else broadcast out of its segment.
        const bool unicast = !m->ciaddr.is_zero();
        auto to = sockaddr_of(unicast ? m->ciaddr.to_string() : "255.255.255.255", 68);
        iovec out_iov{bytes->data(), bytes->size()};
        alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(in_pktinfo))> out_control{};
        msghdr o{};
        o.msg_name = &to;
        o.msg_namelen = sizeof to;
        o.msg_iov = &out_iov;
        o.msg_iovlen = 1;
        if (!unicast) {
          o.msg_control = out_control.data();
          o.msg_controllen = out_control.size();
          cmsghdr* c = CMSG_FIRSTHDR(&o);
          c->cmsg_level = IPPROTO_IP;
          c->cmsg_type = IP_PKTINFO;
          c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
          in_pktinfo info{};
          info.ipi_ifindex = static_cast<int>(client_ifindex_);
          std::memcpy(CMSG_DATA(c), &info, sizeof info);
        }
        if (::sendmsg(fd_.get(), &o, 0) >= 0)
          ++forwarded_replies;
      }
    } catch (const std::exception&) {
      // A send that fails is a lost packet; the client retries.
    }
  }
}

}  // namespace lab::tests::dhcp
