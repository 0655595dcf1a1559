#include "pxe/dhcp/wire/message.hpp"

#include "tests/unit/pxe/dhcp/captures.hpp"

#include <gtest/gtest.h>

namespace {

using namespace lab::pxe::dhcp::wire;
namespace cap = lab::tests::dhcp_captures;

std::vector<std::uint8_t> header_only() {
  std::vector<std::uint8_t> b(kMinSize, 0);
  b[0] = 1;
  b[1] = 1;
  b[2] = 6;
  b[236] = 99;
  b[237] = 130;
  b[238] = 83;
  b[239] = 99;
  return b;
}

TEST(DhcpWire, ParsesDhclientDiscover) {
  auto m = parse(cap::kDhclientDiscover);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->op, 1);
  EXPECT_EQ(m->hlen, 6);
  EXPECT_EQ(*message_type(*m).value(), MessageType::discover);
  ASSERT_NE(m->find(opt::kHostName), nullptr);
  EXPECT_NE(m->find(opt::kParameterList), nullptr);
  EXPECT_TRUE(vendor_class(*m).empty());
  EXPECT_EQ(m->mac().size(), 17u);
}

TEST(DhcpWire, ParsesPxeVendorClassFromDhclientAndUdhcpc) {
  auto a = parse(cap::kDhclientPxeDiscover);
  ASSERT_TRUE(a);
  EXPECT_EQ(vendor_class(*a), "PXEClient:Arch:00007:UNDI:003016");
  auto b = parse(cap::kUdhcpcDiscover);
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(vendor_class(*b), "PXEClient:Arch:00000:UNDI:002001");
  EXPECT_EQ(max_message_size(*b), 576u);
  const Option* id = b->find(opt::kClientId);
  ASSERT_NE(id, nullptr);
  EXPECT_EQ(client_key(*b), std::string(id->data.begin(), id->data.end()));
}

TEST(DhcpWire, CapturedPacketsSurviveARoundTrip) {
  for (const auto* bytes :
       {&cap::kDhclientDiscover, &cap::kDhclientPxeDiscover, &cap::kUdhcpcDiscover}) {
    auto m = parse(*bytes);
    ASSERT_TRUE(m);
    auto out = serialize(*m);
    ASSERT_TRUE(out) << out.error().message();
    auto again = parse(*out);
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, *m);
  }
}

TEST(DhcpWire, RoundTripOfEveryFieldAndLongOptions) {
  Message m;
  m.op = 2;
  m.hops = 1;
  m.xid = 0xdeadbeef;
  m.secs = 7;
  m.flags = Message::kBroadcastFlag;
  m.ciaddr = *Ipv4::parse("10.0.0.9");
  m.yiaddr = *Ipv4::parse("10.0.0.10");
  m.siaddr = *Ipv4::parse("10.0.0.1");
  m.giaddr = *Ipv4::parse("10.1.0.1");
  m.chaddr = {0x52, 0x54, 0, 0x12, 0x34, 0x56};
  m.file = "undionly.kpxe";
  m.sname = "lab";
  m.set(opt::kMessageType, std::vector<std::uint8_t>{5});
  m.set(opt::kBootFile, std::string(300, 'x'));  // split into two instances on the wire
  auto bytes = serialize(m, kMaxPacket);
  ASSERT_TRUE(bytes) << bytes.error().message();
  auto back = parse(*bytes);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, m);
  EXPECT_TRUE(back->broadcast());
  EXPECT_EQ(back->mac(), "52:54:00:12:34:56");
}

TEST(DhcpWire, OverloadsFileAndSnameWhenOptionsDoNotFit) {
  Message m;
  m.op = 2;
  m.set(opt::kMessageType, std::vector<std::uint8_t>{2});
  m.set(200, std::vector<std::uint8_t>(250, 1));
  m.set(201, std::vector<std::uint8_t>(80, 2));  // no longer fits the 576-byte options field
  m.set(202, std::vector<std::uint8_t>(40, 3));
  auto bytes = serialize(m);
  ASSERT_TRUE(bytes) << bytes.error().message();
  EXPECT_LE(bytes->size(), 576u);
  auto back = parse(*bytes);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->options, m.options);
  m.file = "busy";
  m.sname = "busy";
  auto too_big = serialize(m);
  ASSERT_FALSE(too_big);
  EXPECT_EQ(too_big.error(), WireError::too_large);
}

TEST(DhcpWire, ConcatenatesRepeatedOptions) {
  auto b = header_only();
  for (int v : {53, 1, 1, 12, 2, int{'a'}, int{'b'}, 12, 1, int{'c'}, 255})
    b.push_back(static_cast<std::uint8_t>(v));
  auto m = parse(b);
  ASSERT_TRUE(m);
  ASSERT_NE(m->find(12), nullptr);
  EXPECT_EQ(std::string(m->find(12)->data.begin(), m->find(12)->data.end()), "abc");
}

TEST(DhcpWire, EveryFailureSiteHasItsOwnCode) {
  EXPECT_EQ(parse(std::vector<std::uint8_t>(100, 0)).error(), WireError::too_short);
  auto b = header_only();
  b[236] = 0;
  EXPECT_EQ(parse(b).error(), WireError::bad_magic);
  b = header_only();
  b[0] = 3;
  EXPECT_EQ(parse(b).error(), WireError::bad_op);
  b = header_only();
  b[2] = 17;
  EXPECT_EQ(parse(b).error(), WireError::bad_hlen);
  b = header_only();
  b.push_back(12);
  EXPECT_EQ(parse(b).error(), WireError::option_length_missing);
  b = header_only();
  for (int v : {12, 10, int{'a'}})
    b.push_back(static_cast<std::uint8_t>(v));
  auto overrun = parse(b);
  EXPECT_EQ(overrun.error(), WireError::option_overrun);
  EXPECT_NE(overrun.error().detail().find("option 12"), std::string::npos);
  b = header_only();
  for (int i = 0; i < 600; ++i) {
    b.push_back(12);
    b.push_back(0);
  }
  EXPECT_EQ(parse(b).error(), WireError::too_many_options);
  b = header_only();
  for (std::uint8_t v : {52, 1, 4})
    b.push_back(static_cast<std::uint8_t>(v));
  EXPECT_EQ(parse(b).error(), WireError::overload_invalid);
  // An overrun inside an overloaded field names that field.
  b = header_only();
  for (std::uint8_t v : {52, 1, 1, 255})
    b.push_back(static_cast<std::uint8_t>(v));
  b[108] = 12;
  b[109] = 200;
  auto in_file = parse(b);
  EXPECT_EQ(in_file.error(), WireError::option_overrun);
  EXPECT_NE(in_file.error().detail().find("file"), std::string::npos);
}

TEST(DhcpWire, TypedAccessorsRejectBadLengths) {
  Message m;
  m.set(opt::kMessageType, std::vector<std::uint8_t>{9});
  EXPECT_EQ(message_type(m).error(), WireError::bad_message_type);
  m.set(opt::kRequestedIp, std::vector<std::uint8_t>{1, 2, 3});
  EXPECT_EQ(ip_option(m, opt::kRequestedIp).error(), WireError::bad_address);
  m.set(opt::kClientArch, std::vector<std::uint8_t>{0, 7, 0});
  EXPECT_EQ(client_arch(m).error(), WireError::bad_arch);
  m.set(opt::kClientArch, std::vector<std::uint8_t>{0, 7, 0, 9});
  EXPECT_EQ(client_arch(m).value(), (std::vector<std::uint16_t>{7, 9}));
  m.set(opt::kLeaseTime, std::vector<std::uint8_t>{1});
  EXPECT_EQ(u32_option(m, opt::kLeaseTime).error(), WireError::bad_u32);
  EXPECT_EQ(parse_suboptions(std::vector<std::uint8_t>{1, 5, 0}).error(), WireError::bad_suboption);
}

TEST(DhcpWire, UserClassRawIpxeAndRfc3004) {
  Message m;
  m.set(opt::kUserClass, "iPXE");
  EXPECT_EQ(user_classes(m), std::vector<std::string>{"iPXE"});
  m.set(opt::kUserClass, std::vector<std::uint8_t>{4, 'i', 'P', 'X', 'E', 2, 'h', 'i'});
  EXPECT_EQ(user_classes(m), (std::vector<std::string>{"iPXE", "hi"}));
}

TEST(DhcpWire, SuboptionsRoundTrip) {
  std::vector<Option> subs{{1, {'e', 't', 'h', '0'}}, {2, {1, 2, 3}}};
  auto bytes = serialize_suboptions(subs);
  EXPECT_EQ(parse_suboptions(bytes).value(), subs);
}

TEST(DhcpWire, Ipv4Text) {
  EXPECT_EQ(Ipv4::parse("10.0.0.1")->value, 0x0a000001U);
  EXPECT_EQ(Ipv4{0xc0a80101U}.to_string(), "192.168.1.1");
  for (const char* bad : {"", "10.0.0", "10.0.0.256", "10.0.0.1.", "a.b.c.d", "1.2.3.4 "})
    EXPECT_FALSE(Ipv4::parse(bad)) << bad;
}

}  // namespace
