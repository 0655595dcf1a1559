#include "pxe/dhcp/server/server.hpp"

#include "pxe/dhcp/server/metrics.hpp"
#include "shared/log/log.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
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
#include <system_error>

namespace lab::pxe::dhcp::server {

namespace asio = boost::asio;
using asio::ip::udp;
using engine::Outbound;

namespace {

// strerror is not thread-safe; the system category's message is.
std::string errno_text() {
  return std::error_code(errno, std::system_category()).message();
}

// A UDP socket bound to 0.0.0.0:port, limited to one interface when one is configured, able
// to send to 255.255.255.255.
Result<void> open_socket(udp::socket& s, const std::string& interface, std::uint16_t port) {
  boost::system::error_code ec;
  s.open(udp::v4(), ec);
  if (ec)
    return Error(ServerError::socket_failed, "socket: " + ec.message());
  s.set_option(asio::socket_base::reuse_address(true), ec);
  s.set_option(asio::socket_base::broadcast(true), ec);
  // A burst of clients (a rack powering on) must queue, not be dropped, while a batch is
  // handled: as root the buffer may exceed net.core.rmem_max.
  const int rcvbuf = 8 << 20;
  if (::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
    s.set_option(asio::socket_base::receive_buffer_size(rcvbuf), ec);
  if (!interface.empty() &&
      ::setsockopt(s.native_handle(), SOL_SOCKET, SO_BINDTODEVICE, interface.c_str(),
                   static_cast<socklen_t>(interface.size())) != 0)
    return Error(ServerError::bind_to_device, "SO_BINDTODEVICE " + interface + ": " + errno_text());
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
  std::optional<std::size_t> subnet;                // for the metrics
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
        refresh(strand),
        engine(e),
        store(s),
        options(std::move(o)),
        log("dhcp") {
    if (options.metrics != nullptr)
      metrics.emplace(*options.metrics, engine.config());
  }

  asio::strand<asio::io_context::executor_type> strand;
  udp::socket dhcp;
  udp::socket proxy;
  asio::steady_timer refresh;  // the pool gauges
  engine::Engine& engine;
  engine::LeaseStore& store;
  ServerOptions options;
  shared::log::Logger log;
  ServerStats stats;
  std::optional<Metrics> metrics;
  static constexpr std::size_t kMaxBatch = 256;
  std::array<Slot, kMaxBatch> slots{};
  std::size_t commits_in_flight = 0;
  bool stopping = false;
  std::function<void()> stopped;

  // Addresses in use per subnet, every few seconds: one pass over the bindings, off the
  // packet path.
  void refresh_pool() {
    if (!metrics)
      return;
    metrics->in_use(engine.active_by_subnet());
    refresh.expires_after(options.pool_refresh);
    refresh.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec && !self->stopping)
        self->refresh_pool();
    });
  }

  void count_received(const engine::Inbound& in, std::optional<std::size_t>& subnet) {
    if (!metrics)
      return;
    subnet = engine.subnet_index(in);
    if (auto type = wire::message_type(in.message); type && *type)
      metrics->received(subnet, **type);
  }

  void count_sent(const PendingReply& p) {
    if (!metrics)
      return;
    if (auto type = wire::message_type(p.out.message); type && *type)
      metrics->sent(p.subnet, **type);
  }

  void drop(Drop reason, std::uint64_t n = 1) {
    if (metrics)
      metrics->dropped(reason, n);
  }

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
    std::vector<PendingReply> waiting;    // ACKs: sent once their leases are durable
    std::vector<PendingReply> immediate;  // OFFERs, NAKs, proxy replies: sent now
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
        drop(Drop::malformed);
        if (log.enabled(shared::log::Level::debug))
          log.debug("malformed packet",
                    {{"from", source.to_string()}, {"error", msg.error().message()}});
        continue;
      }
      engine::Inbound in{.message = std::move(*msg),
                         .source = source,
                         .source_port = ntohs(slot.from.sin_port),
                         .proxy_port = is_proxy};
      std::optional<std::size_t> subnet;
      count_received(in, subnet);
      engine::Outcome out = engine.handle(in);
      if (!out.reply) {
        ++stats.ignored;
        drop(Drop::ignored);
        if (log.enabled(shared::log::Level::debug))
          log.debug("ignored", {{"mac", in.message.mac()}, {"reason", out.ignored}});
      }
      PendingReply p;
      if (out.reply)
        p = PendingReply{std::move(*out.reply),
                         is_proxy,
                         in.source_port,
                         arrival_ifindex(h),
                         wire::max_message_size(in.message),
                         subnet};
      if (out.durable.empty()) {
        if (out.reply)
          immediate.push_back(std::move(p));
        continue;
      }
      durable.insert(durable.end(), std::make_move_iterator(out.durable.begin()),
                     std::make_move_iterator(out.durable.end()));
      if (out.reply)
        waiting.push_back(std::move(p));
    }
    send_all(immediate);
    if (durable.empty())
      return;
    ++commits_in_flight;
    const auto committing = std::chrono::steady_clock::now();
    store.commit(std::move(durable), [self = shared_from_this(), committing,
                                      waiting = std::move(waiting)](Result<void> r) mutable {
      const auto took = std::chrono::steady_clock::now() - committing;
      asio::post(self->strand,
                 [self, took, waiting = std::move(waiting), r = std::move(r)]() mutable {
                   --self->commits_in_flight;
                   if (self->metrics)
                     self->metrics->commit_took(took);
                   if (!r) {
                     // Never acknowledge what is not durable: the clients retry.
                     self->stats.commit_failed += waiting.size();
                     self->drop(Drop::commit_failed, waiting.size());
                     self->log.error("lease journal commit failed; ACKs withheld",
                                     {{"error", r.error().message()}, {"acks", waiting.size()}});
                   } else if (!self->dhcp_closed()) {
                     self->send_all(waiting);
                   }
                   self->maybe_stopped();
                 });
    });
  }

  [[nodiscard]] bool dhcp_closed() const { return !dhcp.is_open(); }

  // Encodes and sends replies, as few system calls as possible: one sendmmsg per socket.
  void send_all(std::vector<PendingReply>& replies) {
    if (replies.empty())
      return;
    struct Prepared {
      std::vector<std::uint8_t> bytes;
      sockaddr_in to{};
      iovec iov{};
      alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(in_pktinfo))> control{};
      bool proxy = false;
      bool has_control = false;
      const PendingReply* reply = nullptr;
    };
    std::vector<Prepared> out(replies.size());
    std::size_t ready = 0;
    for (auto& p : replies) {
      auto bytes = wire::serialize(p.out.message, p.max_size);
      if (!bytes) {
        ++stats.send_failed;
        drop(Drop::send_failed);
        log.warn("reply not encodable", {{"error", bytes.error().message()}});
        continue;
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
      Prepared& o = out[ready++];
      o.reply = &p;
      o.proxy = p.from_proxy_socket && proxy.is_open();
      udp::socket& s = o.proxy ? proxy : dhcp;
      wire::Ipv4 destination = p.out.destination;
      if (p.out.to_hardware &&
          !add_arp_entry(s.native_handle(), p.ifindex, destination, p.out.message)) {
        // No ARP entry (no CAP_NET_ADMIN, not Ethernet): §4.1 allows the broadcast.
        destination = wire::kBroadcast;
      }
      o.bytes = std::move(*bytes);
      o.to.sin_family = AF_INET;
      o.to.sin_port = htons(port);
      o.to.sin_addr.s_addr = htonl(destination.value);
      o.iov = {o.bytes.data(), o.bytes.size()};
      if (p.ifindex > 0 && p.out.port == Outbound::Port::client) {
        // Out of the interface the request came in on: a broadcast or an address without a
        // route must not follow the default route.
        msghdr h{};
        h.msg_control = o.control.data();
        h.msg_controllen = o.control.size();
        cmsghdr* c = CMSG_FIRSTHDR(&h);
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
        in_pktinfo info{};
        info.ipi_ifindex = p.ifindex;
        std::memcpy(CMSG_DATA(c), &info, sizeof info);
        o.has_control = true;
      }
    }
    for (const bool on_proxy : {false, true}) {
      udp::socket& s = on_proxy ? proxy : dhcp;
      std::vector<mmsghdr> headers;
      std::vector<const PendingReply*> sent_replies;  // beside headers, for the metrics
      headers.reserve(ready);
      sent_replies.reserve(ready);
      for (std::size_t i = 0; i < ready; ++i) {
        Prepared& o = out[i];
        if (o.proxy != on_proxy)
          continue;
        mmsghdr m{};
        m.msg_hdr.msg_name = &o.to;
        m.msg_hdr.msg_namelen = sizeof o.to;
        m.msg_hdr.msg_iov = &o.iov;
        m.msg_hdr.msg_iovlen = 1;
        if (o.has_control) {
          m.msg_hdr.msg_control = o.control.data();
          m.msg_hdr.msg_controllen = o.control.size();
        }
        headers.push_back(m);
        sent_replies.push_back(o.reply);
      }
      std::size_t done = 0;
      while (done < headers.size()) {
        const int n = ::sendmmsg(s.native_handle(), headers.data() + done,
                                 static_cast<unsigned>(headers.size() - done), MSG_DONTWAIT);
        if (n > 0) {
          for (std::size_t i = done; i < done + static_cast<std::size_t>(n); ++i)
            count_sent(*sent_replies[i]);
          done += static_cast<std::size_t>(n);
          stats.sent += static_cast<std::uint64_t>(n);
          continue;
        }
        // The first message of the rest failed: count it and go on with the others.
        ++stats.send_failed;
        drop(Drop::send_failed);
        if (log.enabled(shared::log::Level::debug)) {
          const auto* to = static_cast<const sockaddr_in*>(headers[done].msg_hdr.msg_name);
          log.debug("send failed", {{"to", wire::Ipv4{ntohl(to->sin_addr.s_addr)}.to_string()},
                                    {"error", errno_text()}});
        }
        ++done;
      }
    }
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
    impl_->refresh.cancel();
  }
}

Result<std::unique_ptr<Server>> Server::start(asio::io_context& io, engine::Engine& engine,
                                              engine::LeaseStore& store, ServerOptions options) {
  auto impl = std::make_shared<Impl>(io, engine, store, std::move(options));
  LAB_TRY(open_socket(impl->dhcp, impl->options.interface, impl->options.port));
  if (impl->options.proxy_port)
    LAB_TRY(open_socket(impl->proxy, impl->options.interface, impl->options.proxy_port_number));
  asio::post(impl->strand, [impl] {
    impl->refresh_pool();
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
    impl->refresh.cancel();
    impl->stopped = std::move(stopped);
    impl->maybe_stopped();
  });
}

Result<std::optional<wire::Ipv4>> probe_other_server(const std::string& interface,
                                                     std::uint16_t server_port,
                                                     std::chrono::milliseconds wait) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return Error(ServerError::socket_failed, std::string("socket: ") + errno_text());
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
  if (!interface.empty() && ::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, interface.c_str(),
                                         static_cast<socklen_t>(interface.size())) != 0)
    return Error(ServerError::bind_to_device, "SO_BINDTODEVICE " + interface + ": " + errno_text());
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_port = htons(static_cast<std::uint16_t>(server_port + 1));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0)
    return Error(ServerError::bind_failed,
                 "bind client port " + std::to_string(server_port + 1) + ": " + errno_text());

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
  const auto send_discover = [&] {
    return bytes && ::sendto(fd, bytes->data(), bytes->size(), 0,
                             reinterpret_cast<const sockaddr*>(&to), sizeof to) >= 0;
  };
  if (!send_discover())
    return Error(ServerError::probe_failed, std::string("send DISCOVER: ") + errno_text());

  // The DISCOVER is repeated every second, as a client would, in case one is lost.
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + wait;
  auto next_send = start + std::chrono::seconds(1);
  std::array<std::uint8_t, wire::kMaxPacket> buf{};
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline)
      return std::optional<wire::Ipv4>();
    if (now >= next_send) {
      (void)send_discover();
      next_send += std::chrono::seconds(1);
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::min(deadline, next_send) - now);
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 1))) <= 0)
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
    return Error(ServerError::no_interface_address, std::string("getifaddrs: ") + errno_text());
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
