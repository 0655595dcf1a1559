#include "pxe/dhcp/engine/engine.hpp"

#include <gtest/gtest.h>

#include <mutex>

namespace {

using namespace lab::pxe::dhcp::engine;
using namespace lab::pxe::dhcp::wire;
using namespace std::chrono_literals;
namespace events = lab::pxe::events;

class FakeClock final : public Clock {
 public:
  [[nodiscard]] std::chrono::system_clock::time_point now() const override { return now_; }
  void advance(std::chrono::seconds s) { now_ += s; }

 private:
  std::chrono::system_clock::time_point now_{std::chrono::seconds(1'800'000'000)};
};

class RecordingSink final : public events::Sink {
 public:
  void record(events::Event e) override { seen.push_back(std::move(e)); }
  [[nodiscard]] std::size_t count(events::Kind k) const {
    return static_cast<std::size_t>(
        std::count_if(seen.begin(), seen.end(), [k](const auto& e) { return e.kind == k; }));
  }
  std::vector<events::Event> seen;
};

Ipv4 ip(const char* text) {
  return *Ipv4::parse(text);
}

EngineConfig base_config() {
  EngineConfig c;
  c.server_ip = ip("10.0.0.1");
  Subnet s = *Subnet::parse_cidr("10.0.0.0/24");
  s.range_start = ip("10.0.0.100");
  s.range_end = ip("10.0.0.103");
  s.router = ip("10.0.0.1");
  s.dns = {ip("10.0.0.53")};
  s.lease_time = 3600s;
  Subnet relayed = *Subnet::parse_cidr("10.5.0.0/16");
  relayed.range_start = ip("10.5.0.10");
  relayed.range_end = ip("10.5.0.20");
  c.subnets = {s, relayed};
  c.boot.boot_url = "http://10.0.0.1:8080/boot/boot.ipxe";
  return c;
}

Message client_msg(MessageType type, std::uint8_t id) {
  Message m;
  m.op = 1;
  m.xid = 0x1000U + id;
  m.chaddr = {0x52, 0x54, 0x00, 0x00, 0x00, id};
  m.set(opt::kMessageType, std::vector<std::uint8_t>{static_cast<std::uint8_t>(type)});
  return m;
}

Inbound in(Message m) {
  return Inbound{.message = std::move(m), .source = {}, .source_port = 68, .proxy_port = false};
}

struct Fixture : ::testing::Test {
  FakeClock clock;
  RecordingSink sink;
  Engine make(EngineConfig c = base_config()) {
    auto e = Engine::create(std::move(c), clock, sink);
    EXPECT_TRUE(e) << e.error().message();
    return std::move(*e);
  }
  // DISCOVER → OFFER → REQUEST → ACK; returns the ACK.
  Outcome dora(Engine& e, std::uint8_t id, const Message& extra = {}) {
    Message d = client_msg(MessageType::discover, id);
    for (auto& o : extra.options)
      d.set(o.code, o.data);
    d.giaddr = extra.giaddr;
    auto offer = e.handle(in(d));
    EXPECT_TRUE(offer.reply) << offer.ignored;
    if (!offer.reply)
      return offer;
    Message r = client_msg(MessageType::request, id);
    for (auto& o : extra.options)
      r.set(o.code, o.data);
    r.giaddr = extra.giaddr;
    r.set_ip(opt::kServerId, ip("10.0.0.1"));
    r.set_ip(opt::kRequestedIp, offer.reply->message.yiaddr);
    return e.handle(in(r));
  }
};

MessageType type_of(const Outbound& o) {
  return *message_type(o.message).value();
}

TEST_F(Fixture, FullDoraGivesAnAddressWithOptionsAndRecordsIt) {
  Engine e = make();
  auto ack = dora(e, 1);
  ASSERT_TRUE(ack.reply);
  EXPECT_EQ(type_of(*ack.reply), MessageType::ack);
  EXPECT_EQ(ack.reply->message.yiaddr, ip("10.0.0.100"));
  // No ciaddr and no broadcast flag: unicast to yiaddr at the client's hardware address.
  EXPECT_FALSE(ack.reply->broadcast());
  EXPECT_TRUE(ack.reply->to_hardware);
  EXPECT_EQ(ack.reply->destination, ip("10.0.0.100"));
  EXPECT_EQ(ack.reply->port, Outbound::Port::client);
  EXPECT_EQ(ip_option(ack.reply->message, opt::kRouter).value(), ip("10.0.0.1"));
  EXPECT_EQ(ip_option(ack.reply->message, opt::kSubnetMask).value(), ip("255.255.255.0"));
  EXPECT_EQ(ip_option(ack.reply->message, opt::kServerId).value(), ip("10.0.0.1"));
  EXPECT_EQ(u32_option(ack.reply->message, opt::kLeaseTime).value(), 3600u);
  EXPECT_EQ(u32_option(ack.reply->message, opt::kRenewalTime).value(), 1800u);
  EXPECT_EQ(u32_option(ack.reply->message, opt::kRebindingTime).value(), 3150u);
  ASSERT_EQ(ack.durable.size(), 1u);
  EXPECT_EQ(ack.durable[0].ip, ip("10.0.0.100"));
  EXPECT_EQ(ack.durable[0].mac, "52:54:00:00:00:01");
  EXPECT_EQ(sink.count(events::Kind::dhcp_discover), 1u);
  EXPECT_EQ(sink.count(events::Kind::dhcp_offer), 1u);
  EXPECT_EQ(sink.count(events::Kind::dhcp_ack), 1u);
  EXPECT_EQ(sink.seen.back().ip, "10.0.0.100");
  // A second client gets another address.
  auto second = dora(e, 2);
  EXPECT_EQ(second.reply->message.yiaddr, ip("10.0.0.101"));
}

TEST_F(Fixture, BroadcastFlagGetsABroadcastReply) {
  Engine e = make();
  Message d = client_msg(MessageType::discover, 1);
  d.flags = Message::kBroadcastFlag;
  auto offer = e.handle(in(d));
  ASSERT_TRUE(offer.reply);
  EXPECT_TRUE(offer.reply->broadcast());
  EXPECT_FALSE(offer.reply->to_hardware);
  EXPECT_TRUE(offer.reply->message.broadcast());  // the flag is echoed for relays
  // A hardware address that is not Ethernet cannot be put in the ARP table: broadcast.
  Message odd = client_msg(MessageType::discover, 2);
  odd.htype = 6;
  auto offer2 = e.handle(in(odd));
  ASSERT_TRUE(offer2.reply);
  EXPECT_TRUE(offer2.reply->broadcast());
}

TEST_F(Fixture, RenewIsUnicastToCiaddrAndExtendsTheLease) {
  Engine e = make();
  dora(e, 1);
  clock.advance(1800s);
  Message renew = client_msg(MessageType::request, 1);
  renew.ciaddr = ip("10.0.0.100");
  auto ack = e.handle(in(renew));
  ASSERT_TRUE(ack.reply);
  EXPECT_EQ(type_of(*ack.reply), MessageType::ack);
  EXPECT_EQ(ack.reply->destination, ip("10.0.0.100"));
  EXPECT_EQ(ack.durable.at(0).expires, 1'800'000'000 + 1800 + 3600);
  clock.advance(3000s);  // past the first lease's end, within the renewed one
  EXPECT_EQ(e.bound_address(client_key(renew)), ip("10.0.0.100"));
}

TEST_F(Fixture, ReleaseFreesTheAddressAndDeclineTakesItOutOfThePool) {
  Engine e = make();
  dora(e, 1);
  Message rel = client_msg(MessageType::release, 1);
  rel.ciaddr = ip("10.0.0.100");
  rel.set_ip(opt::kServerId, ip("10.0.0.1"));
  auto r = e.handle(in(rel));
  EXPECT_FALSE(r.reply);
  ASSERT_EQ(r.durable.size(), 1u);
  EXPECT_EQ(r.durable[0].state, Lease::State::released);
  EXPECT_FALSE(e.bound_address(client_key(rel)));
  EXPECT_EQ(sink.count(events::Kind::dhcp_release), 1u);

  auto ack = dora(e, 2);
  const Ipv4 taken = ack.reply->message.yiaddr;
  Message dec = client_msg(MessageType::decline, 2);
  dec.set_ip(opt::kRequestedIp, taken);
  dec.set_ip(opt::kServerId, ip("10.0.0.1"));
  auto d = e.handle(in(dec));
  EXPECT_FALSE(d.reply);
  ASSERT_EQ(d.durable.size(), 1u);
  EXPECT_EQ(d.durable[0].state, Lease::State::declined);
  // Nobody gets the declined address while it is held, not even by asking for it.
  Message disc = client_msg(MessageType::discover, 3);
  disc.set_ip(opt::kRequestedIp, taken);
  auto offer = e.handle(in(disc));
  ASSERT_TRUE(offer.reply);
  EXPECT_NE(offer.reply->message.yiaddr, taken);
}

TEST_F(Fixture, NakForAnotherClientsAddressOrTheWrongNetwork) {
  Engine e = make();
  dora(e, 1);
  Message steal = client_msg(MessageType::request, 2);
  steal.set_ip(opt::kRequestedIp, ip("10.0.0.100"));  // INIT-REBOOT for 1's address
  auto nak = e.handle(in(steal));
  ASSERT_TRUE(nak.reply);
  EXPECT_EQ(type_of(*nak.reply), MessageType::nak);
  EXPECT_TRUE(nak.reply->broadcast());
  EXPECT_TRUE(nak.durable.empty());
  Message wrong = client_msg(MessageType::request, 3);
  wrong.set_ip(opt::kRequestedIp, ip("192.168.7.7"));
  auto nak2 = e.handle(in(wrong));
  ASSERT_TRUE(nak2.reply);
  EXPECT_EQ(type_of(*nak2.reply), MessageType::nak);
  EXPECT_EQ(sink.count(events::Kind::dhcp_nak), 2u);
}

TEST_F(Fixture, RequestForAnotherServerReturnsOurOfferToThePool) {
  Engine e = make();
  auto offer = e.handle(in(client_msg(MessageType::discover, 1)));
  Message r = client_msg(MessageType::request, 1);
  r.set_ip(opt::kServerId, ip("10.0.0.250"));
  r.set_ip(opt::kRequestedIp, ip("10.9.9.9"));
  EXPECT_FALSE(e.handle(in(r)).reply);
  // All four addresses of the pool are free again for four other clients.
  std::vector<Ipv4> offered;
  for (std::uint8_t id = 2; id <= 5; ++id) {
    auto other = e.handle(in(client_msg(MessageType::discover, id)));
    ASSERT_TRUE(other.reply);
    offered.push_back(other.reply->message.yiaddr);
  }
  EXPECT_NE(std::find(offered.begin(), offered.end(), offer.reply->message.yiaddr), offered.end());
}

TEST_F(Fixture, RelayedRequestsUseTheRelaysSubnetAndGoBackToItWithOption82) {
  Engine e = make();
  Message extra;
  extra.giaddr = ip("10.5.0.1");
  extra.set(opt::kRelayAgentInfo, std::vector<std::uint8_t>{1, 4, 'p', 'o', 'r', 't'});
  auto ack = dora(e, 1, extra);
  ASSERT_TRUE(ack.reply);
  EXPECT_EQ(ack.reply->message.yiaddr, ip("10.5.0.10"));
  EXPECT_EQ(ack.reply->destination, ip("10.5.0.1"));
  EXPECT_EQ(ack.reply->port, Outbound::Port::server);
  EXPECT_EQ(ack.reply->message.giaddr, ip("10.5.0.1"));
  ASSERT_NE(ack.reply->message.find(opt::kRelayAgentInfo), nullptr);
  EXPECT_EQ(ack.reply->message.options.back().code, opt::kRelayAgentInfo);
  // A relay on a segment we do not serve gets nothing.
  Message unknown = client_msg(MessageType::discover, 2);
  unknown.giaddr = ip("172.16.0.1");
  auto none = e.handle(in(unknown));
  EXPECT_FALSE(none.reply);
  EXPECT_NE(none.ignored.find("no subnet"), std::string::npos);
}

TEST_F(Fixture, ReservationsWinOverThePoolAndCarryTheHostname) {
  EngineConfig c = base_config();
  c.reservations.push_back({"52:54:00:00:00:07", ip("10.0.0.50"), "node7"});
  Engine e = make(c);
  auto ack = dora(e, 7);
  ASSERT_TRUE(ack.reply);
  EXPECT_EQ(ack.reply->message.yiaddr, ip("10.0.0.50"));
  const Option* host = ack.reply->message.find(opt::kHostName);
  ASSERT_NE(host, nullptr);
  EXPECT_EQ(std::string(host->data.begin(), host->data.end()), "node7");
  // The reserved client asking for a pool address is sent to its own.
  Message r = client_msg(MessageType::request, 7);
  r.set_ip(opt::kRequestedIp, ip("10.0.0.101"));
  EXPECT_EQ(type_of(*e.handle(in(r)).reply), MessageType::nak);
  // Another client cannot take the reserved address.
  Message other = client_msg(MessageType::request, 8);
  other.set_ip(opt::kRequestedIp, ip("10.0.0.50"));
  EXPECT_EQ(type_of(*e.handle(in(other)).reply), MessageType::nak);
}

TEST_F(Fixture, BadReservationsAreConfigErrors) {
  EngineConfig c = base_config();
  c.reservations.push_back({"52:54:00:00:00:07", ip("192.168.0.5"), ""});
  EXPECT_EQ(Engine::create(c, clock, sink).error(), EngineError::bad_reservation);
  c.reservations = {{"52-54-00-00-00-07", ip("10.0.0.5"), ""}};
  EXPECT_EQ(Engine::create(c, clock, sink).error(), EngineError::bad_reservation);
  EngineConfig none = base_config();
  none.server_ip = {};
  EXPECT_EQ(Engine::create(none, clock, sink).error(), EngineError::no_server_ip);
}

TEST_F(Fixture, PoolExhaustionAndOfferExpiry) {
  Engine e = make();
  for (std::uint8_t id = 1; id <= 4; ++id)
    ASSERT_TRUE(e.handle(in(client_msg(MessageType::discover, id))).reply);
  auto fifth = e.handle(in(client_msg(MessageType::discover, 5)));
  EXPECT_FALSE(fifth.reply);
  EXPECT_EQ(fifth.ignored, "pool exhausted");
  // Offers are held briefly; once they lapse the addresses are free again.
  clock.advance(31s);
  auto later = e.handle(in(client_msg(MessageType::discover, 5)));
  ASSERT_TRUE(later.reply);
  // The same client asking again within the hold gets the same offer.
  auto again = e.handle(in(client_msg(MessageType::discover, 5)));
  EXPECT_EQ(again.reply->message.yiaddr, later.reply->message.yiaddr);
  // Bound leases do not lapse with the offer hold.
  clock.advance(31s);
  for (std::uint8_t id = 10; id <= 13; ++id)
    ASSERT_TRUE(dora(e, id).reply);
  clock.advance(600s);
  EXPECT_FALSE(e.handle(in(client_msg(MessageType::discover, 20))).reply);
}

TEST_F(Fixture, RestoredLeasesAreNotHandedOutAgain) {
  Engine first = make();
  std::vector<Lease> journal;
  for (std::uint8_t id = 1; id <= 2; ++id) {
    auto ack = dora(first, id);
    journal.insert(journal.end(), ack.durable.begin(), ack.durable.end());
  }
  Engine second = make();
  second.restore(journal);
  auto ack = dora(second, 3);
  ASSERT_TRUE(ack.reply);
  EXPECT_EQ(ack.reply->message.yiaddr, ip("10.0.0.102"));
  EXPECT_EQ(second.bound_address(client_key(client_msg(MessageType::request, 1))),
            ip("10.0.0.100"));
}

// A client id longer than any standard client sends is ignored, whatever the message: the
// lease would be keyed and journaled by it. The longest accepted one is served as any other.
TEST_F(Fixture, OverlongClientIdIsIgnoredAndTheLongestAcceptedOneServed) {
  Engine e = make();
  const std::vector<std::uint8_t> overlong(kMaxClientId + 1, 0xab);
  Message d = client_msg(MessageType::discover, 1);
  d.set(opt::kClientId, overlong);
  auto out = e.handle(in(d));
  EXPECT_FALSE(out.reply);
  EXPECT_NE(out.ignored.find("option 61"), std::string::npos) << out.ignored;
  Message r = client_msg(MessageType::request, 1);
  r.set(opt::kClientId, overlong);
  r.set_ip(opt::kServerId, ip("10.0.0.1"));
  r.set_ip(opt::kRequestedIp, ip("10.0.0.100"));
  out = e.handle(in(r));
  EXPECT_FALSE(out.reply);
  EXPECT_TRUE(out.durable.empty());
  EXPECT_EQ(e.active_count(), 0U);
  EXPECT_EQ(sink.count(events::Kind::dhcp_discover), 0U);

  Message longest;
  longest.set(opt::kClientId, std::vector<std::uint8_t>(kMaxClientId, 0xcd));
  auto ack = dora(e, 2, longest);
  ASSERT_TRUE(ack.reply) << ack.ignored;
  ASSERT_EQ(ack.durable.size(), 1U);
  EXPECT_EQ(ack.durable[0].client, std::string(kMaxClientId, '\xcd'));
  EXPECT_EQ(e.bound_address(ack.durable[0].client), ack.reply->message.yiaddr);
}

TEST_F(Fixture, InformGetsOptionsWithoutALease) {
  Engine e = make();
  Message inf = client_msg(MessageType::inform, 1);
  inf.ciaddr = ip("10.0.0.77");
  auto r = e.handle(in(inf));
  ASSERT_TRUE(r.reply);
  EXPECT_EQ(type_of(*r.reply), MessageType::ack);
  EXPECT_TRUE(r.reply->message.yiaddr.is_zero());
  EXPECT_EQ(r.reply->message.find(opt::kLeaseTime), nullptr);
  EXPECT_EQ(r.reply->destination, ip("10.0.0.77"));
  EXPECT_TRUE(r.durable.empty());
}

TEST_F(Fixture, MalformedPacketsAreIgnoredWithAReason) {
  Engine e = make();
  Message bootp = client_msg(MessageType::discover, 1);
  bootp.erase(opt::kMessageType);
  EXPECT_FALSE(e.handle(in(bootp)).reply);
  Message reply = client_msg(MessageType::discover, 1);
  reply.op = 2;
  EXPECT_FALSE(e.handle(in(reply)).reply);
  Message bad_req = client_msg(MessageType::request, 1);
  bad_req.set(opt::kRequestedIp, std::vector<std::uint8_t>{1});
  EXPECT_FALSE(e.handle(in(bad_req)).reply);
}

TEST_F(Fixture, FullModeBootInformationForPxeClients) {
  Engine e = make();
  Message extra;
  extra.set(opt::kVendorClass, "PXEClient:Arch:00000:UNDI:002001");
  extra.set(opt::kClientArch, std::vector<std::uint8_t>{0, 0});
  auto ack = dora(e, 1, extra);
  ASSERT_TRUE(ack.reply);
  EXPECT_EQ(ack.reply->message.file, "undionly.kpxe");
  EXPECT_EQ(ack.reply->message.siaddr, ip("10.0.0.1"));
  EXPECT_EQ(vendor_class(ack.reply->message), "PXEClient");
  // An ordinary client gets no boot information.
  auto plain = dora(e, 2);
  EXPECT_TRUE(plain.reply->message.file.empty());
  EXPECT_EQ(plain.reply->message.find(opt::kVendorClass), nullptr);
}

TEST_F(Fixture, ProxyModeAnswersPxeClientsOnlyAndNeverWithAnAddress) {
  EngineConfig c = base_config();
  c.mode = Mode::proxy;
  c.subnets.clear();
  Engine e = make(c);
  EXPECT_FALSE(e.handle(in(client_msg(MessageType::discover, 1))).reply);

  Message d = client_msg(MessageType::discover, 2);
  d.set(opt::kVendorClass, "PXEClient:Arch:00007:UNDI:003016");
  d.set(opt::kClientArch, std::vector<std::uint8_t>{0, 7});
  std::vector<std::uint8_t> uuid(17, 0xab);
  uuid[0] = 0;
  d.set(opt::kClientUuid, uuid);
  auto offer = e.handle(in(d));
  ASSERT_TRUE(offer.reply) << offer.ignored;
  EXPECT_EQ(type_of(*offer.reply), MessageType::offer);
  EXPECT_TRUE(offer.reply->message.yiaddr.is_zero());
  EXPECT_EQ(offer.reply->message.file, "ipxe.efi");
  EXPECT_EQ(vendor_class(offer.reply->message), "PXEClient");
  const Option* vendor = offer.reply->message.find(opt::kVendorSpecific);
  ASSERT_NE(vendor, nullptr);
  auto subs = parse_suboptions(vendor->data);
  ASSERT_TRUE(subs);
  ASSERT_EQ(subs->size(), 1u);
  EXPECT_EQ((*subs)[0].code, 6);  // PXE_DISCOVERY_CONTROL
  EXPECT_EQ((*subs)[0].data, std::vector<std::uint8_t>{8});
  EXPECT_EQ(offer.reply->message.find(opt::kClientUuid)->data, uuid);
  EXPECT_EQ(offer.reply->message.find(opt::kLeaseTime), nullptr);
  EXPECT_TRUE(offer.durable.empty());
  EXPECT_EQ(sink.count(events::Kind::proxy_offer), 1u);

  // REQUEST on 67 is for the real DHCP server; on 4011 it gets a proxy ACK back to its port.
  // The REQUEST to the other server names the address the client will boot from: observed.
  Message to_other = client_msg(MessageType::request, 2);
  to_other.set(opt::kVendorClass, "PXEClient:Arch:00007:UNDI:003016");
  to_other.set_ip(opt::kRequestedIp, ip("10.0.0.149"));
  auto seen = e.handle(in(to_other));
  EXPECT_FALSE(seen.reply);
  ASSERT_EQ(seen.durable.size(), 1u);
  EXPECT_EQ(seen.durable[0].state, Lease::State::observed);
  EXPECT_EQ(seen.durable[0].ip, ip("10.0.0.149"));
  Message r = client_msg(MessageType::request, 2);
  r.set(opt::kVendorClass, "PXEClient:Arch:00007:UNDI:003016");
  r.ciaddr = ip("10.0.0.150");
  EXPECT_FALSE(e.handle(in(r)).reply);
  Inbound on4011{.message = r, .source = ip("10.0.0.150"), .source_port = 4011, .proxy_port = true};
  auto ack = e.handle(on4011);
  ASSERT_TRUE(ack.reply);
  EXPECT_EQ(type_of(*ack.reply), MessageType::ack);
  EXPECT_EQ(ack.reply->destination, ip("10.0.0.150"));
  EXPECT_EQ(ack.reply->port, Outbound::Port::source);
  EXPECT_TRUE(ack.reply->message.yiaddr.is_zero());
  EXPECT_EQ(sink.count(events::Kind::proxy_ack), 1u);
  // Where the machine is, made durable before the answer (boot tokens are bound to it), but
  // never a binding of ours: a restart does not take the address into any pool.
  ASSERT_EQ(ack.durable.size(), 1u);
  EXPECT_EQ(ack.durable[0].state, Lease::State::observed);
  EXPECT_EQ(ack.durable[0].ip, ip("10.0.0.150"));
  EXPECT_EQ(ack.durable[0].mac, "52:54:00:00:00:02");
  EXPECT_EQ(ack.durable[0].expires, 1'800'000'000 + 3600);
  Engine full = make();
  full.restore(ack.durable);
  EXPECT_EQ(full.active_count(), 0u);
}

// iPXE up to 2019 (Debian 12's) accepts a ProxyDHCP answer only with a next server and a boot
// file: with an HTTP script URL as the file, siaddr must still name this server.
TEST_F(Fixture, ProxyAnswersToIpxeNameTheNextServerBesideTheScriptUrl) {
  EngineConfig c = base_config();
  c.mode = Mode::proxy;
  c.subnets.clear();
  Engine e = make(c);
  Message d = client_msg(MessageType::discover, 3);
  d.set(opt::kVendorClass, "PXEClient:Arch:00000:UNDI:002001");
  d.set(opt::kClientArch, std::vector<std::uint8_t>{0, 0});
  d.set(opt::kUserClass, std::string_view("iPXE"));
  auto offer = e.handle(in(d));
  ASSERT_TRUE(offer.reply) << offer.ignored;
  EXPECT_TRUE(offer.reply->message.file.starts_with("http://")) << offer.reply->message.file;
  EXPECT_EQ(offer.reply->message.siaddr, c.server_ip);
  Message r = client_msg(MessageType::request, 3);
  r.set(opt::kVendorClass, "PXEClient:Arch:00000:UNDI:002001");
  r.set(opt::kUserClass, std::string_view("iPXE"));
  r.ciaddr = ip("10.0.0.151");
  auto ack = e.handle(
      Inbound{.message = r, .source = ip("10.0.0.151"), .source_port = 68, .proxy_port = true});
  ASSERT_TRUE(ack.reply);
  EXPECT_EQ(ack.reply->message.siaddr, c.server_ip);
}

}  // namespace
