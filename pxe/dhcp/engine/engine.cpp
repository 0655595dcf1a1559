#include "pxe/dhcp/engine/engine.hpp"

#include <algorithm>
#include <charconv>

namespace lab::pxe::dhcp::engine {
namespace {

using wire::Ipv4;
using wire::Message;
using wire::MessageType;
namespace opt = wire::opt;
using TimePoint = std::chrono::system_clock::time_point;

std::int64_t unix_seconds(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::uint32_t seconds_u32(std::chrono::seconds s) {
  return static_cast<std::uint32_t>(std::clamp<std::int64_t>(s.count(), 0, 0xfffffffe));
}

bool valid_mac(std::string_view mac) {
  if (mac.size() != 17)
    return false;
  for (std::size_t i = 0; i < mac.size(); ++i) {
    const char c = mac[i];
    if (i % 3 == 2) {
      if (c != ':')
        return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

}  // namespace

const boost::system::error_category& engine_category() noexcept {
  static const ErrorCategory<EngineError> kCategory(
      "lab.dhcp.engine", [](EngineError e) noexcept -> const char* {
        switch (e) {
          case EngineError::no_server_ip:
            return "no server address";
          case EngineError::bad_subnet:
            return "invalid subnet";
          case EngineError::bad_reservation:
            return "invalid reservation";
          case EngineError::no_subnet:
            return "full mode needs at least one subnet";
        }
        return "dhcp engine error";
      });
  return kCategory;
}

std::optional<Subnet> Subnet::parse_cidr(std::string_view cidr) {
  const auto slash = cidr.find('/');
  if (slash == std::string_view::npos)
    return std::nullopt;
  auto ip = Ipv4::parse(cidr.substr(0, slash));
  int prefix = -1;
  const auto p = cidr.substr(slash + 1);
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
  if (!ip || ec != std::errc() || end != p.data() + p.size() || prefix < 1 || prefix > 30)
    return std::nullopt;
  Subnet s;
  s.network = *ip;
  s.prefix = prefix;
  if ((s.network.value & ~s.mask().value) != 0)
    return std::nullopt;
  return s;
}

Ipv4 Subnet::mask() const noexcept {
  return Ipv4{prefix <= 0 ? 0U : 0xffffffffU << (32 - prefix)};
}

bool Subnet::contains(Ipv4 ip) const noexcept {
  return (ip.value & mask().value) == network.value;
}

Engine::Engine(EngineConfig config, const Clock& clock, events::Sink& sink)
    : config_(std::move(config)), clock_(&clock), sink_(&sink) {}

Result<Engine> Engine::create(EngineConfig config, const Clock& clock, events::Sink& sink) {
  if (config.server_ip.is_zero())
    return Error(EngineError::no_server_ip, "dhcp.server_ip is not set");
  if (config.mode == Mode::full && config.subnets.empty())
    return Error(EngineError::no_subnet, "dhcp.subnets is empty");
  for (const auto& s : config.subnets) {
    const std::string name = s.network.to_string() + "/" + std::to_string(s.prefix);
    if (!s.contains(s.range_start) || !s.contains(s.range_end) || s.range_end < s.range_start)
      return Error(EngineError::bad_subnet, "range of " + name + " lies outside it or is empty");
    if (!s.router.is_zero() && !s.contains(s.router))
      return Error(EngineError::bad_subnet, "router of " + name + " lies outside it");
  }
  Engine e(std::move(config), clock, sink);
  for (const auto& r : e.config_.reservations) {
    if (!valid_mac(r.mac))
      return Error(EngineError::bad_reservation, "MAC '" + r.mac + "' is not aa:bb:cc:dd:ee:ff");
    const bool in_subnet = std::any_of(e.config_.subnets.begin(), e.config_.subnets.end(),
                                       [&](const Subnet& s) { return s.contains(r.ip); });
    if (!in_subnet)
      return Error(EngineError::bad_reservation,
                   "address " + r.ip.to_string() + " of " + r.mac + " is in no subnet");
    if (!e.reserved_ips_.insert(r.ip.value).second || e.reservations_.contains(r.mac))
      return Error(EngineError::bad_reservation, "duplicate reservation for " + r.mac);
    e.reservations_.emplace(r.mac, r);
  }
  e.cursor_.assign(e.config_.subnets.size(), 0);
  return e;
}

void Engine::restore(const std::vector<Lease>& leases) {
  const auto now = clock_->now();
  for (const auto& l : leases) {
    const TimePoint expires{std::chrono::seconds(l.expires)};
    if (l.state == Lease::State::released || l.state == Lease::State::observed || expires <= now)
      continue;
    bind(l.ip, l.client, l.mac, l.state == Lease::State::bound ? State::bound : State::declined,
         expires);
  }
}

std::optional<Ipv4> Engine::bound_address(const std::string& client_key) const {
  auto it = by_client_.find(client_key);
  if (it == by_client_.end())
    return std::nullopt;
  auto b = by_ip_.find(it->second);
  if (b == by_ip_.end() || b->second.state != State::bound || b->second.expires <= clock_->now())
    return std::nullopt;
  return Ipv4{it->second};
}

std::size_t Engine::active_count() const {
  const auto now = clock_->now();
  return static_cast<std::size_t>(std::count_if(
      by_ip_.begin(), by_ip_.end(), [&](const auto& kv) { return kv.second.expires > now; }));
}

std::vector<std::size_t> Engine::active_by_subnet() const {
  std::vector<std::size_t> out(config_.subnets.size());
  const auto now = clock_->now();
  for (const auto& [ip, binding] : by_ip_) {
    if (binding.expires <= now)
      continue;
    for (std::size_t i = 0; i < config_.subnets.size(); ++i) {
      if (config_.subnets[i].contains(Ipv4{ip})) {
        ++out[i];
        break;
      }
    }
  }
  return out;
}

std::optional<std::size_t> Engine::subnet_index(const Inbound& in) const {
  if (config_.mode == Mode::proxy)
    return std::nullopt;
  const Subnet* s = select_subnet(in);
  if (s == nullptr)
    return std::nullopt;
  return static_cast<std::size_t>(s - config_.subnets.data());
}

void Engine::emit(events::Kind kind, const Message& m, Ipv4 ip,
                  std::vector<std::pair<std::string, std::string>> detail) const {
  events::Event e;
  e.at = clock_->now();
  e.kind = kind;
  e.mac = m.mac();
  if (!ip.is_zero())
    e.ip = ip.to_string();
  e.detail = std::move(detail);
  sink_->record(std::move(e));
}

Outcome Engine::handle(const Inbound& in) {
  const Message& m = in.message;
  if (m.op != 1)
    return Outcome{.reply = {}, .durable = {}, .ignored = "not a BOOTREQUEST"};
  auto type = wire::message_type(m);
  if (!type || !*type)
    return Outcome{.reply = {}, .durable = {}, .ignored = "no valid message type (BOOTP)"};
  // Leases are keyed and journaled by client id: an unbounded one would not fit a journal
  // record (lease_store.cpp checks the bound).
  if (const auto* id = m.find(opt::kClientId);
      id != nullptr && id->data.size() > wire::kMaxClientId)
    return Outcome{.reply = {},
                   .durable = {},
                   .ignored = "client id (option 61) of " + std::to_string(id->data.size()) +
                              " bytes, longer than " + std::to_string(wire::kMaxClientId)};
  if (config_.mode == Mode::proxy)
    return handle_proxy(in, **type);
  return handle_full(in, **type);
}

const Subnet* Engine::select_subnet(const Inbound& in) const {
  const Message& m = in.message;
  // Relayed: the relay's address names the client's segment (RFC 2131 §4.3.1).
  const Ipv4 hint = !m.giaddr.is_zero() ? m.giaddr : config_.server_ip;
  for (const auto& s : config_.subnets) {
    if (s.contains(hint))
      return &s;
  }
  if (m.giaddr.is_zero() && config_.subnets.size() == 1)
    return &config_.subnets.front();
  return nullptr;
}

const Reservation* Engine::reservation_for(const Message& m) const {
  if (reservations_.empty() || m.htype != 1 || m.hlen != 6)
    return nullptr;
  auto it = reservations_.find(m.mac());
  return it == reservations_.end() ? nullptr : &it->second;
}

bool Engine::usable_by(Ipv4 ip, const std::string& client, TimePoint now) const {
  auto it = by_ip_.find(ip.value);
  if (it == by_ip_.end() || it->second.expires <= now)
    return true;
  return it->second.client == client && it->second.state != State::declined;
}

void Engine::unbind(Ipv4 ip) {
  auto it = by_ip_.find(ip.value);
  if (it == by_ip_.end())
    return;
  auto c = by_client_.find(it->second.client);
  if (c != by_client_.end() && c->second == ip.value)
    by_client_.erase(c);
  by_ip_.erase(it);
}

void Engine::bind(Ipv4 ip, const std::string& client, const std::string& mac, State state,
                  TimePoint expires) {
  auto existing = by_ip_.find(ip.value);
  if (existing != by_ip_.end() && existing->second.client != client)
    unbind(ip);
  if (state != State::declined) {
    auto c = by_client_.find(client);
    if (c != by_client_.end() && c->second != ip.value)
      unbind(Ipv4{c->second});  // one address per client: the old one goes back to the pool
    by_client_[client] = ip.value;
  } else {
    auto c = by_client_.find(client);
    if (c != by_client_.end() && c->second == ip.value)
      by_client_.erase(c);
  }
  Binding& b = by_ip_[ip.value];
  b.client = state == State::declined ? std::string() : client;
  b.mac = mac;
  b.state = state;
  b.expires = expires;
}

std::optional<Ipv4> Engine::allocate(const Subnet& subnet, std::size_t index,
                                     const std::string& client, const Message& m, TimePoint now) {
  const Reservation* res = reservation_for(m);
  if (res != nullptr && subnet.contains(res->ip) && usable_by(res->ip, client, now))
    return res->ip;
  const auto in_pool = [&](Ipv4 ip) {
    return ip >= subnet.range_start && ip <= subnet.range_end && !reserved_ips_.contains(ip.value);
  };
  if (auto c = by_client_.find(client); c != by_client_.end()) {
    const Ipv4 ip{c->second};
    if (in_pool(ip) && usable_by(ip, client, now))
      return ip;
  }
  if (auto requested = wire::ip_option(m, opt::kRequestedIp); requested && *requested) {
    const Ipv4 ip = **requested;
    if (in_pool(ip) && usable_by(ip, client, now))
      return ip;
  }
  const std::uint64_t size = std::uint64_t{subnet.range_end.value} - subnet.range_start.value + 1;
  std::uint32_t& cursor = cursor_[index];
  for (std::uint64_t n = 0; n < size; ++n) {
    const auto offset = static_cast<std::uint32_t>((cursor + n) % size);
    const Ipv4 ip{subnet.range_start.value + offset};
    if (!reserved_ips_.contains(ip.value) && usable_by(ip, client, now)) {
      cursor = static_cast<std::uint32_t>((offset + 1) % size);
      return ip;
    }
  }
  return std::nullopt;
}

Message Engine::reply_base(const Message& req, MessageType type) const {
  Message r;
  r.op = 2;
  r.htype = req.htype;
  r.hlen = req.hlen;
  r.xid = req.xid;
  r.flags = req.flags;
  r.giaddr = req.giaddr;
  r.chaddr = req.chaddr;
  r.set(opt::kMessageType, std::vector<std::uint8_t>{static_cast<std::uint8_t>(type)});
  r.set_ip(opt::kServerId, config_.server_ip);
  return r;
}

void Engine::add_config_options(Message& r, const Message& req, const Subnet& subnet,
                                const Reservation* reservation) const {
  r.set_ip(opt::kSubnetMask, subnet.mask());
  if (!subnet.router.is_zero())
    r.set_ip(opt::kRouter, subnet.router);
  if (!subnet.dns.empty()) {
    std::vector<std::uint8_t> dns(subnet.dns.size() * 4);
    for (std::size_t i = 0; i < subnet.dns.size(); ++i)
      subnet.dns[i].to_bytes(&dns[i * 4]);
    r.set(opt::kDns, std::move(dns));
  }
  if (reservation != nullptr && !reservation->hostname.empty())
    r.set(opt::kHostName, reservation->hostname);
  add_boot(r, decide_boot(req, config_.boot));
}

void Engine::add_boot(Message& r, const BootDecision& boot) const {
  if (boot.kind == ClientKind::none)
    return;
  if (!boot.vendor_class.empty())
    r.set(opt::kVendorClass, boot.vendor_class);
  if (boot.file.empty())
    return;
  const bool http = boot.file.starts_with("http://") || boot.file.starts_with("https://");
  if (!http) {
    r.siaddr = config_.server_ip;  // TFTP "next server"
    r.set(opt::kTftpServer, config_.server_ip.to_string());
  }
  if (boot.file.size() < 128)
    r.file = boot.file;
  r.set(opt::kBootFile, boot.file);
  if (boot.pxe && boot.kind != ClientKind::ipxe) {
    // PXE_DISCOVERY_CONTROL = 8: boot the file named here, skip boot server discovery and
    // menus (PXE 2.1 §2.4.2). Required for proxy offers; harmless in full mode.
    r.set(opt::kVendorSpecific, std::vector<std::uint8_t>{6, 1, 8, opt::kEnd});
  }
}

Outbound Engine::address(const Message& req, Message reply, bool nak) {
  Outbound out;
  out.destination = wire::kBroadcast;  // a NAK, or what the client asked for (§4.1)
  if (!req.giaddr.is_zero()) {
    if (nak)
      reply.flags |= Message::kBroadcastFlag;  // RFC 2131 §4.3.2: the relay broadcasts a NAK
    out.destination = req.giaddr;
    out.port = Outbound::Port::server;
  } else if (!nak && !req.ciaddr.is_zero()) {
    out.destination = req.ciaddr;
  } else if (!nak && !req.broadcast() && !reply.yiaddr.is_zero() && req.htype == 1 &&
             req.hlen == 6) {
    // No address yet and no broadcast asked for: unicast to yiaddr at chaddr (§4.1).
    out.destination = reply.yiaddr;
    out.to_hardware = true;
  }
  // Relay agent information is echoed last (RFC 3046 §2.2).
  if (const auto* o82 = req.find(opt::kRelayAgentInfo); o82 != nullptr)
    reply.set(opt::kRelayAgentInfo, o82->data);
  out.message = std::move(reply);
  return out;
}

Outcome Engine::handle_full(const Inbound& in, MessageType type) {
  switch (type) {
    case MessageType::release:
      return release(in);
    case MessageType::decline:
      return decline(in);
    case MessageType::discover:
    case MessageType::request:
    case MessageType::inform: {
      const Subnet* subnet = select_subnet(in);
      if (subnet == nullptr)
        return Outcome{.reply = {},
                       .durable = {},
                       .ignored = "no subnet for giaddr " + in.message.giaddr.to_string()};
      if (type == MessageType::discover)
        return discover(in, *subnet);
      if (type == MessageType::request)
        return request(in, *subnet);
      return inform(in, *subnet);
    }
    default:
      return Outcome{.reply = {}, .durable = {}, .ignored = "a server message type"};
  }
}

Outcome Engine::discover(const Inbound& in, const Subnet& subnet) {
  const Message& m = in.message;
  const auto now = clock_->now();
  const std::string client = wire::client_key(m);
  const BootDecision boot = decide_boot(m, config_.boot);
  emit(events::Kind::dhcp_discover, m, {}, {{"arch", boot.arch}});
  const auto index = static_cast<std::size_t>(&subnet - config_.subnets.data());
  const auto ip = allocate(subnet, index, client, m, now);
  if (!ip)
    return Outcome{.reply = {}, .durable = {}, .ignored = "pool exhausted"};
  auto existing = by_ip_.find(ip->value);
  const bool already_bound = existing != by_ip_.end() && existing->second.client == client &&
                             existing->second.state == State::bound &&
                             existing->second.expires > now;
  if (!already_bound)
    bind(*ip, client, m.mac(), State::offered, now + config_.offer_hold);

  Message r = reply_base(m, MessageType::offer);
  r.yiaddr = *ip;
  r.set_u32(opt::kLeaseTime, seconds_u32(subnet.lease_time));
  r.set_u32(opt::kRenewalTime, seconds_u32(subnet.lease_time / 2));
  r.set_u32(opt::kRebindingTime, seconds_u32(subnet.lease_time * 7 / 8));
  add_config_options(r, m, subnet, reservation_for(m));
  emit(events::Kind::dhcp_offer, m, *ip, {{"arch", boot.arch}, {"file", boot.file}});
  return Outcome{.reply = address(m, std::move(r), false), .durable = {}, .ignored = {}};
}

Outcome Engine::request(const Inbound& in, const Subnet& subnet) {
  const Message& m = in.message;
  const auto now = clock_->now();
  const std::string client = wire::client_key(m);
  auto server_id = wire::ip_option(m, opt::kServerId);
  auto requested = wire::ip_option(m, opt::kRequestedIp);
  if (!server_id || !requested)
    return Outcome{.reply = {}, .durable = {}, .ignored = "malformed option 50 or 54"};
  if (*server_id && **server_id != config_.server_ip) {
    // The client chose another server's offer: our offer goes back to the pool.
    if (auto c = by_client_.find(client); c != by_client_.end()) {
      auto b = by_ip_.find(c->second);
      if (b != by_ip_.end() && b->second.state == State::offered)
        unbind(Ipv4{c->second});
    }
    return Outcome{.reply = {}, .durable = {}, .ignored = "REQUEST for another server"};
  }
  const Ipv4 ip = *requested ? **requested : m.ciaddr;
  emit(events::Kind::dhcp_request, m, ip);
  if (ip.is_zero())
    return Outcome{.reply = {}, .durable = {}, .ignored = "REQUEST without an address"};

  const Reservation* res = reservation_for(m);
  const char* refuse = nullptr;
  if (!subnet.contains(ip)) {
    refuse = "address not on this network";
  } else if (res != nullptr && subnet.contains(res->ip) && res->ip != ip) {
    refuse = "client has a reserved address";
  } else if (!(res != nullptr && res->ip == ip) &&
             (ip < subnet.range_start || ip > subnet.range_end ||
              reserved_ips_.contains(ip.value))) {
    refuse = "address outside the pool";
  } else if (!usable_by(ip, client, now)) {
    refuse = "address in use";
  }
  if (refuse != nullptr) {
    Message r = reply_base(m, MessageType::nak);
    r.set(opt::kMessage, refuse);
    emit(events::Kind::dhcp_nak, m, ip, {{"reason", refuse}});
    return Outcome{.reply = address(m, std::move(r), true), .durable = {}, .ignored = {}};
  }

  const auto expires = now + subnet.lease_time;
  bind(ip, client, m.mac(), State::bound, expires);
  Message r = reply_base(m, MessageType::ack);
  r.yiaddr = ip;
  r.ciaddr = m.ciaddr;
  r.set_u32(opt::kLeaseTime, seconds_u32(subnet.lease_time));
  r.set_u32(opt::kRenewalTime, seconds_u32(subnet.lease_time / 2));
  r.set_u32(opt::kRebindingTime, seconds_u32(subnet.lease_time * 7 / 8));
  add_config_options(r, m, subnet, res);
  const BootDecision boot = decide_boot(m, config_.boot);
  emit(events::Kind::dhcp_ack, m, ip, {{"arch", boot.arch}, {"file", boot.file}});
  Outcome out;
  out.durable.push_back(Lease{.ip = ip,
                              .state = Lease::State::bound,
                              .expires = unix_seconds(expires),
                              .mac = m.mac(),
                              .client = client});
  out.reply = address(m, std::move(r), false);
  return out;
}

Outcome Engine::decline(const Inbound& in) {
  const Message& m = in.message;
  const std::string client = wire::client_key(m);
  auto requested = wire::ip_option(m, opt::kRequestedIp);
  auto server_id = wire::ip_option(m, opt::kServerId);
  if (!requested || !*requested || !server_id || (*server_id && **server_id != config_.server_ip))
    return Outcome{.reply = {}, .durable = {}, .ignored = "DECLINE not for us"};
  const Ipv4 ip = **requested;
  auto it = by_ip_.find(ip.value);
  if (it == by_ip_.end() || it->second.client != client)
    return Outcome{.reply = {}, .durable = {}, .ignored = "DECLINE of an address not held"};
  emit(events::Kind::dhcp_decline, m, ip);
  // Someone else answers ARP for it: keep it out of the pool for a while.
  const auto until = clock_->now() + config_.decline_hold;
  bind(ip, client, m.mac(), State::declined, until);
  Outcome out;
  out.durable.push_back(Lease{.ip = ip,
                              .state = Lease::State::declined,
                              .expires = unix_seconds(until),
                              .mac = m.mac(),
                              .client = {}});
  out.ignored = "DECLINE has no reply";
  return out;
}

Outcome Engine::release(const Inbound& in) {
  const Message& m = in.message;
  const std::string client = wire::client_key(m);
  auto it = by_ip_.find(m.ciaddr.value);
  if (m.ciaddr.is_zero() || it == by_ip_.end() || it->second.client != client)
    return Outcome{.reply = {}, .durable = {}, .ignored = "RELEASE of an address not held"};
  emit(events::Kind::dhcp_release, m, m.ciaddr);
  unbind(m.ciaddr);
  Outcome out;
  out.durable.push_back(Lease{.ip = m.ciaddr,
                              .state = Lease::State::released,
                              .expires = unix_seconds(clock_->now()),
                              .mac = m.mac(),
                              .client = client});
  out.ignored = "RELEASE has no reply";
  return out;
}

Outcome Engine::inform(const Inbound& in, const Subnet& subnet) {
  const Message& m = in.message;
  emit(events::Kind::dhcp_inform, m, m.ciaddr);
  Message r = reply_base(m, MessageType::ack);
  r.ciaddr = m.ciaddr;
  add_config_options(r, m, subnet, reservation_for(m));
  return Outcome{.reply = address(m, std::move(r), false), .durable = {}, .ignored = {}};
}

void Engine::observe(Outcome& out, const Message& m, Ipv4 ip) const {
  // Where this machine is, as durable as a lease of ours: boot tokens are bound to it.
  if (ip.is_zero() || m.mac().empty())
    return;
  out.durable.push_back(Lease{.ip = ip,
                              .state = Lease::State::observed,
                              .expires = unix_seconds(clock_->now() + config_.observation_time),
                              .mac = m.mac(),
                              .client = wire::client_key(m)});
}

Outcome Engine::handle_proxy(const Inbound& in, MessageType type) {
  const Message& m = in.message;
  const BootDecision boot = decide_boot(m, config_.boot);
  if (!boot.pxe)
    return Outcome{.reply = {}, .durable = {}, .ignored = "proxy mode: not a PXE client"};
  const bool offer = !in.proxy_port && type == MessageType::discover;
  const bool ack = in.proxy_port && (type == MessageType::request || type == MessageType::inform);
  if (!offer && !ack) {
    Outcome out{.reply = {},
                .durable = {},
                .ignored = "proxy mode answers DISCOVER on 67 and REQUEST on 4011 only"};
    // The client asking the other server for its address is where it will boot from: most
    // PXE ROMs take the boot file from the proxy offer and never come to port 4011.
    if (type == MessageType::request && !in.proxy_port) {
      auto requested = m.ciaddr;
      if (requested.is_zero()) {
        if (auto asked = wire::ip_option(m, opt::kRequestedIp); asked && *asked)
          requested = **asked;
      }
      observe(out, m, requested);
    }
    return out;
  }
  Message r = reply_base(m, offer ? MessageType::offer : MessageType::ack);
  r.ciaddr = m.ciaddr;
  // A proxy never hands out an address: yiaddr stays 0 (PXE 2.1 §2.2.5).
  if (boot.vendor_class.empty())
    r.set(opt::kVendorClass, "PXEClient");
  add_boot(r, boot);
  // Also when the boot file is a URL: iPXE up to 2019 (Debian 12's ROMs and binaries) takes a
  // ProxyDHCP answer only when it names a next server as well as a boot file.
  r.siaddr = config_.server_ip;
  if (const auto* uuid = m.find(opt::kClientUuid); uuid != nullptr)
    r.set(opt::kClientUuid, uuid->data);
  emit(offer ? events::Kind::proxy_offer : events::Kind::proxy_ack, m, m.ciaddr,
       {{"arch", boot.arch}, {"file", boot.file}});
  if (ack) {
    // Port 4011: the client already has its address and listens where it sent from.
    Outbound out;
    out.destination = in.source.is_zero() ? wire::kBroadcast : in.source;
    out.port = in.source.is_zero() ? Outbound::Port::client : Outbound::Port::source;
    out.message = std::move(r);
    Outcome result{.reply = std::move(out), .durable = {}, .ignored = {}};
    observe(result, m, m.ciaddr);
    return result;
  }
  return Outcome{.reply = address(m, std::move(r), false), .durable = {}, .ignored = {}};
}

}  // namespace lab::pxe::dhcp::engine
