#include "pxe/dhcp/server/server.hpp"

#include "shared/log/log.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <random>

namespace lab::pxe::dhcp::server {

namespace asio = boost::asio;
using asio::ip::udp;
using engine::Outbound;

namespace {

// A UDP socket bound to 0.0.0.0:port, limited to one interface when one is configured, able
// to send to 255.255.255.255.
Result<void> open_socket(udp::socket& s, const std::string& interface, std::uint16_t port) {
  boost::system::error_code ec;
  s.open(udp::v4(), ec);
  if (ec)
    return Error(ServerError::socket_failed, "socket: " + ec.message());
  s.set_option(asio::socket_base::reuse_address(true), ec);
  s.set_option(asio::socket_base::broadcast(true), ec);
  s.set_option(asio::socket_base::receive_buffer_size(4 << 20), ec);
  if (!interface.empty() &&
      ::setsockopt(s.native_handle(), SOL_SOCKET, SO_BINDTODEVICE, interface.c_str(),
                   static_cast<socklen_t>(interface.size())) != 0)
    return Error(ServerError::bind_to_device,
                 "SO_BINDTODEVICE " + interface + ": " + std::strerror(errno));
  s.bind(udp::endpoint(udp::v4(), port), ec);
  if (ec)
    return Error(ServerError::bind_failed,
                 "bind 0.0.0.0:" + std::to_string(port) + ": " + ec.message());
  // The arrival interface of each packet: replies to clients without an address leave
  // through it, and their ARP entries are made on it.
  const int one = 1;
  ::setsockopt(s.native_handle(), IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
  s.non_blocking(true, ec);
  return {};
}

struct PendingReply {
  Outbound out;
  bool from_proxy_socket = false;
  std::uint16_t source_port = 0;
  int ifindex = 0;                                  // arrival interface; 0: unknown
  std::size_t max_size = wire::kDefaultMaxMessage;  // the client's option 57
};

// Enters ip → chaddr in the ARP table of `ifindex`, so that a unicast to an address the
// client does not answer ARP for yet reaches it (RFC 2131 §4.1). Needs CAP_NET_ADMIN.
bool add_arp_entry(int fd, int ifindex, wire::Ipv4 ip, const wire::Message& m) {
  if (ifindex <= 0 || m.htype != 1 || m.hlen != 6)
    return false;
  arpreq req{};
  sockaddr_in pa{};
  pa.sin_family = AF_INET;
  pa.sin_addr.s_addr = htonl(ip.value);
  std::memcpy(&req.arp_pa, &pa, sizeof pa);
  req.arp_ha.sa_family = ARPHRD_ETHER;
  std::memcpy(req.arp_ha.sa_data, m.chaddr.data(), 6);
  req.arp_flags = ATF_COM;
  if (::if_indextoname(static_cast<unsigned>(ifindex), req.arp_dev) == nullptr)
    return false;
  return ::ioctl(fd, SIOCSARP, &req) == 0;
}

// One receive slot of a batch: the packet, its sender and its IP_PKTINFO.
struct Slot {
  std::array<std::uint8_t, wire::kMaxPacket> data{};
  sockaddr_in from{};
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(in_pktinfo))> control{};
  iovec iov{};
};

int arrival_ifindex(msghdr& h) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      in_pktinfo info{};
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      return info.ipi_ifindex;
    }
  }
  return 0;
}

}  // namespace

const boost::system::error_category& server_category() noexcept {
  static const ErrorCategory<ServerError> kCategory("lab.dhcp.server",
                                                    [](ServerError e) noexcept -> const char* {
                                                      switch (e) {
                                                        case ServerError::socket_failed:
                                                          return "cannot create socket";
                                                        case ServerError::bind_to_device:
                                                          return "cannot bind to interface";
                                                        case ServerError::bind_failed:
                                                          return "cannot bind DHCP port";
                                                        case ServerError::probe_failed:
                                                          return "DHCP server probe failed";
                                                        case ServerError::no_interface_address:
                                                          return "interface has no IPv4 address";
                                                      }
                                                      return "dhcp server error";
                                                    });
  return kCategory;
}

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  Impl(asio::io_context& io, engine::Engine& e, engine::LeaseStore& s, ServerOptions o)
      : strand(asio::make_strand(io)),
        dhcp(strand),
        proxy(strand),
        engine(e),
        store(s),
        options(std::move(o)),
        log("dhcp") {}

  asio::strand<asio::io_context::executor_type> strand;
  udp::socket dhcp;
  udp::socket proxy;
  engine::Engine& engine;
  engine::LeaseStore& store;
  ServerOptions options;
  shared::log::Logger log;
  ServerStats stats;
  static constexpr std::size_t kMaxBatch = 256;
  std::array<Slot, kMaxBatch> slots{};
  std::size_t commits_in_flight = 0;
  bool stopping = false;
  std::function<void()> stopped;

  void arm(udp::socket& s, bool is_proxy) {
    s.async_wait(udp::socket::wait_read,
                 [self = shared_from_this(), &s, is_proxy](const boost::system::error_code& ec) {
                   if (ec || self->stopping)
                     return;
                   self->drain(s, is_proxy);
                   self->arm(s, is_proxy);
                 });
  }

  // Reads up to one batch of packets, answers what can be answered now, and commits the
  // leases of the batch together; their ACKs go out when the store says they are durable.
  void drain(udp::socket& s, bool is_proxy) {
    std::vector<engine::Lease> durable;
    std::vector<PendingReply> waiting;
    const std::size_t batch = std::min(options.batch, slots.size());
    std::array<mmsghdr, kMaxBatch> headers{};
    for (std::size_t i = 0; i < batch; ++i) {
      Slot& slot = slots[i];
      slot.iov = {slot.data.data(), slot.data.size()};
      msghdr& h = headers[i].msg_hdr;
      h.msg_name = &slot.from;
      h.msg_namelen = sizeof slot.from;
      h.msg_iov = &slot.iov;
      h.msg_iovlen = 1;
      h.msg_control = slot.control.data();
      h.msg_controllen = slot.control.size();
    }
    const int got = ::recvmmsg(s.native_handle(), headers.data(), static_cast<unsigned>(batch),
                               MSG_DONTWAIT, nullptr);
    for (int i = 0; i < got; ++i) {
      Slot& slot = slots[static_cast<std::size_t>(i)];
      msghdr& h = headers[static_cast<std::size_t>(i)].msg_hdr;
      const std::size_t n = headers[static_cast<std::size_t>(i)].msg_len;
      ++stats.received;
      const wire::Ipv4 source{ntohl(slot.from.sin_addr.s_addr)};
      auto msg = wire::parse(std::span<const std::uint8_t>(slot.data.data(), n));
      if (!msg) {
        ++stats.malformed;
        if (log.enabled(shared::log::Level::debug))
          log.debug("malformed packet",
                    {{"from", source.to_string()}, {"error", msg.error().message()}});
        continue;
      }
      engine::Inbound in{.message = std::move(*msg),
                         .source = source,
                         .source_port = ntohs(slot.from.sin_port),
                         .proxy_port = is_proxy};
      engine::Outcome out = engine.handle(in);
      if (!out.reply) {
        ++stats.ignored;
        if (log.enabled(shared::log::Level::debug))
          log.debug("ignored", {{"mac", in.message.mac()}, {"reason", out.ignored}});
      }
      PendingReply p;
      if (out.reply)
        p = PendingReply{std::move(*out.reply), is_proxy, in.source_port, arrival_ifindex(h),
                         wire::max_message_size(in.message)};
      if (out.durable.empty()) {
        if (out.reply)
          send(p);
        continue;
      }
      durable.insert(durable.end(), std::make_move_iterator(out.durable.begin()),
                     std::make_move_iterator(out.durable.end()));
      if (out.reply)
        waiting.push_back(std::move(p));
    }
    if (durable.empty())
      return;
    ++commits_in_flight;
    store.commit(std::move(durable), [self = shared_from_this(),
                                      waiting = std::move(waiting)](Result<void> r) mutable {
      asio::post(self->strand, [self, waiting = std::move(waiting), r = std::move(r)]() mutable {
        --self->commits_in_flight;
        if (!r) {
          // Never acknowledge what is not durable: the clients retry.
          self->stats.commit_failed += waiting.size();
          self->log.error("lease journal commit failed; ACKs withheld",
                          {{"error", r.error().message()}, {"acks", waiting.size()}});
        } else if (!self->dhcp_closed()) {
          for (auto& p : waiting)
            self->send(p);
        }
        self->maybe_stopped();
      });
    });
  }

  [[nodiscard]] bool dhcp_closed() const { return !dhcp.is_open(); }

  void send(const PendingReply& p) {
    auto bytes = wire::serialize(p.out.message, p.max_size);
    if (!bytes) {
      ++stats.send_failed;
      log.warn("reply not encodable", {{"error", bytes.error().message()}});
      return;
    }
    std::uint16_t port = 0;
    switch (p.out.port) {
      case Outbound::Port::client:
        port = static_cast<std::uint16_t>(options.port + 1);
        break;
      case Outbound::Port::server:
        port = options.port;
        break;
      case Outbound::Port::source:
        port = p.source_port;
        break;
    }
    udp::socket& s = p.from_proxy_socket && proxy.is_open() ? proxy : dhcp;
    wire::Ipv4 destination = p.out.destination;
    if (p.out.to_hardware && !add_arp_entry(s.native_handle(), p.ifindex, destination,
                                            p.out.message)) {
      // No ARP entry (no CAP_NET_ADMIN, not Ethernet): §4.1 allows the broadcast.
      destination = wire::kBroadcast;
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(destination.value);
    iovec iov{bytes->data(), bytes->size()};
    msghdr h{};
    h.msg_name = &to;
    h.msg_namelen = sizeof to;
    h.msg_iov = &iov;
    h.msg_iovlen = 1;
    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(in_pktinfo))> control{};
    if (p.ifindex > 0 && p.out.port == Outbound::Port::client) {
      // Out of the interface the request came in on: a broadcast or an address without a
      // route must not follow the default route.
      h.msg_control = control.data();
      h.msg_controllen = control.size();
      cmsghdr* c = CMSG_FIRSTHDR(&h);
      c->cmsg_level = IPPROTO_IP;
      c->cmsg_type = IP_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
      in_pktinfo info{};
      info.ipi_ifindex = p.ifindex;
      std::memcpy(CMSG_DATA(c), &info, sizeof info);
    }
    if (::sendmsg(s.native_handle(), &h, MSG_DONTWAIT) < 0) {
      ++stats.send_failed;
      if (log.enabled(shared::log::Level::debug))
        log.debug("send failed",
                  {{"to", destination.to_string()}, {"error", std::strerror(errno)}});
      return;
    }
    ++stats.sent;
  }

  void maybe_stopped() {
    if (stopping && commits_in_flight == 0 && stopped) {
      auto cb = std::move(stopped);
      stopped = nullptr;
      cb();
    }
  }
};

Server::Server(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() {
  if (impl_ && !impl_->stopping) {
    // Destroyed without stop(): close on the caller's thread; pending handlers hold impl_.
    impl_->stopping = true;
    boost::system::error_code ec;
    impl_->dhcp.close(ec);
    impl_->proxy.close(ec);
  }
}

Result<std::unique_ptr<Server>> Server::start(asio::io_context& io, engine::Engine& engine,
                                              engine::LeaseStore& store, ServerOptions options) {
  auto impl = std::make_shared<Impl>(io, engine, store, std::move(options));
  LAB_TRY(open_socket(impl->dhcp, impl->options.interface, impl->options.port));
  if (impl->options.proxy_port)
    LAB_TRY(open_socket(impl->proxy, impl->options.interface, impl->options.proxy_port_number));
  asio::post(impl->strand, [impl] {
    impl->arm(impl->dhcp, false);
    if (impl->proxy.is_open())
      impl->arm(impl->proxy, true);
  });
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

void Server::stop(std::function<void()> stopped) {
  asio::post(impl_->strand, [impl = impl_, stopped = std::move(stopped)]() mutable {
    impl->stopping = true;
    boost::system::error_code ec;
    impl->dhcp.close(ec);
    impl->proxy.close(ec);
    impl->stopped = std::move(stopped);
    impl->maybe_stopped();
  });
}

Result<std::optional<wire::Ipv4>> probe_other_server(const std::string& interface,
                                                     std::uint16_t server_port,
                                                     std::chrono::milliseconds wait) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return Error(ServerError::socket_failed, std::string("socket: ") + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
  if (!interface.empty() && ::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, interface.c_str(),
                                         static_cast<socklen_t>(interface.size())) != 0)
    return Error(ServerError::bind_to_device,
                 "SO_BINDTODEVICE " + interface + ": " + std::strerror(errno));
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_port = htons(static_cast<std::uint16_t>(server_port + 1));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0)
    return Error(ServerError::bind_failed, "bind client port " + std::to_string(server_port + 1) +
                                               ": " + std::strerror(errno));

  std::random_device rd;
  wire::Message d;
  d.op = 1;
  d.xid = rd();
  d.flags = wire::Message::kBroadcastFlag;
  d.chaddr[0] = 0x02;  // locally administered, unicast
  for (std::size_t i = 1; i < 6; ++i)
    d.chaddr[i] = static_cast<std::uint8_t>(rd());
  d.set(wire::opt::kMessageType,
        std::vector<std::uint8_t>{static_cast<std::uint8_t>(wire::MessageType::discover)});
  auto bytes = wire::serialize(d);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(server_port);
  to.sin_addr.s_addr = INADDR_BROADCAST;
  if (!bytes || ::sendto(fd, bytes->data(), bytes->size(), 0,
                         reinterpret_cast<const sockaddr*>(&to), sizeof to) < 0)
    return Error(ServerError::probe_failed, std::string("send DISCOVER: ") + std::strerror(errno));

  const auto deadline = std::chrono::steady_clock::now() + wait;
  std::array<std::uint8_t, wire::kMaxPacket> buf{};
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return std::optional<wire::Ipv4>();
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
      continue;
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0)
      continue;
    auto m = wire::parse(std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(n)));
    if (!m || m->op != 2 || m->xid != d.xid || m->chaddr != d.chaddr)
      continue;
    auto type = wire::message_type(*m);
    if (!type || *type != wire::MessageType::offer)
      continue;
    auto id = wire::ip_option(*m, wire::opt::kServerId);
    return std::optional<wire::Ipv4>(id && *id ? **id : m->siaddr);
  }
}

Result<wire::Ipv4> interface_address(const std::string& interface) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0)
    return Error(ServerError::no_interface_address,
                 std::string("getifaddrs: ") + std::strerror(errno));
  std::optional<wire::Ipv4> found;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET || interface != a->ifa_name)
      continue;
    sockaddr_in sin{};
    std::memcpy(&sin, a->ifa_addr, sizeof sin);
    found = wire::Ipv4{ntohl(sin.sin_addr.s_addr)};
    break;
  }
  ::freeifaddrs(list);
  if (!found)
    return Error(ServerError::no_interface_address,
                 "interface '" + interface + "' has no IPv4 address; set dhcp.server_ip");
  return *found;
}

}  // namespace lab::pxe::dhcp::server
