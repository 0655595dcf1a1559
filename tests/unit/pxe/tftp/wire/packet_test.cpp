#include "pxe/tftp/wire/packet.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace {
using namespace std::string_literals;

using namespace lab::pxe::tftp::wire;

// Op code in two bytes followed by the text, NULs written as \0 in string literals.
std::vector<std::uint8_t> packet(std::uint16_t op, std::string_view body) {
  // Sized once: GCC 12 at -O3 misreads an insert after a two-element initializer as overflow.
  std::vector<std::uint8_t> out(2 + body.size());
  out[0] = static_cast<std::uint8_t>(op >> 8);
  out[1] = static_cast<std::uint8_t>(op & 0xff);
  std::copy(body.begin(), body.end(), out.begin() + 2);
  return out;
}

TEST(TftpWire, ParsesARealOvmfRequest) {
  using namespace std::string_view_literals;
  auto r = parse(packet(1,
                        "ipxe.efi\0octet\0tsize\0"
                        "0\0blksize\0"
                        "1468\0windowsize\0"
                        "4\0"sv));
  ASSERT_TRUE(r) << r.error().message();
  const auto& req = std::get<Request>(*r);
  EXPECT_EQ(req.opcode, Opcode::rrq);
  EXPECT_EQ(req.filename, "ipxe.efi");
  EXPECT_EQ(req.mode, Mode::octet);
  ASSERT_EQ(req.options.size(), 3U);
  EXPECT_EQ(req.option("blksize"), "1468");
  EXPECT_EQ(req.option("windowsize"), "4");
  EXPECT_EQ(req.option("tsize"), "0");
  EXPECT_FALSE(req.option("timeout"));
}

TEST(TftpWire, RoundTripsEveryPacketKind) {
  const std::vector<Packet> packets = {
      Request{Opcode::rrq, "boot/undionly.kpxe", Mode::netascii, {{"blksize", "1428"}}},
      Request{Opcode::wrq, "x", Mode::octet, {}},
      Data{65535, {1, 2, 3, 0, 255}},
      Data{0, {}},
      Ack{1},
      ErrorPacket{1, "file not found"},
      ErrorPacket{8, ""},
      OAck{{{"tsize", "123456"}, {"blksize", "1468"}, {"windowsize", "8"}}},
  };
  for (const auto& p : packets) {
    auto again = parse(serialize(p));
    ASSERT_TRUE(again) << again.error().message();
    EXPECT_EQ(*again, p);
  }
}

TEST(TftpWire, OptionNamesAndModeAreCaseInsensitive) {
  using namespace std::string_view_literals;
  auto r = parse(packet(1,
                        "f\0OCTET\0BlkSize\0"
                        "512\0"sv));
  ASSERT_TRUE(r);
  EXPECT_EQ(std::get<Request>(*r).option("blksize"), "512");
  EXPECT_EQ(std::get<Request>(*r).mode, Mode::octet);
}

TEST(TftpWire, UnknownOptionsPassThrough) {
  using namespace std::string_view_literals;
  auto r = parse(packet(1, "f\0octet\0multicast\0\0"sv));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(std::get<Request>(*r).option("multicast"), "");
}

struct Bad {
  std::vector<std::uint8_t> bytes;
  WireError expected;
};

TEST(TftpWire, RefusesMalformedPacketsWithDistinctCodes) {
  using namespace std::string_view_literals;
  const std::vector<Bad> cases = {
      {{}, WireError::too_short},
      {{0}, WireError::too_short},
      {packet(9, ""), WireError::unknown_opcode},
      {packet(0, "x"), WireError::unknown_opcode},
      {packet(1, "file-without-nul"), WireError::filename_unterminated},
      {packet(1, "\0octet\0"sv), WireError::filename_empty},
      {packet(1, std::string(1100, 'a') + "\0octet\0"s), WireError::filename_too_long},
      {packet(1, "f\0octet"sv), WireError::mode_unterminated},
      {packet(1, "f\0binary\0"sv), WireError::mode_unknown},
      {packet(1, "f\0octet\0blksize"sv), WireError::option_name_unterminated},
      {packet(1, "f\0octet\0blksize\0"sv), WireError::option_value_missing},
      {packet(1,
              "f\0octet\0blksize\0"
              "512"sv),
       WireError::option_value_unterminated},
      {packet(1,
              "f\0octet\0\0"
              "5\0"sv),
       WireError::option_name_empty},
      {packet(1,
              "f\0octet\0blksize\0"
              "512\0BLKSIZE\0"
              "1024\0"sv),
       WireError::option_duplicate},
      {packet(1, "f\0octet\0blksize\0-1\0"sv), WireError::option_value_invalid},
      {packet(1, "f\0octet\0timeout\0\0"sv), WireError::option_value_invalid},
      {packet(1, "f\0octet\0windowsize\0 8\0"sv), WireError::option_value_invalid},
      {packet(1,
              "f\0octet\0tsize\0"
              "99999999999999999999\0"sv),
       WireError::option_value_absurd},
      {packet(1,
              "f\0octet\0blksize\0"
              "4294967296\0"sv),
       WireError::option_value_absurd},
      {packet(3, "\x01"sv), WireError::data_too_short},
      {packet(3, std::string(2 + 65465, 'x')), WireError::data_too_long},
      {packet(4, "\0"sv), WireError::ack_wrong_length},
      {packet(4, "\0\x01\0"sv), WireError::ack_wrong_length},
      {packet(5, "\0"sv), WireError::error_too_short},
      {packet(5, "\0\x01no nul"sv), WireError::error_unterminated},
      {packet(5, "\0\x01msg\0extra"sv), WireError::trailing_bytes},
      {packet(6, "blksize\0"sv), WireError::option_value_missing},
  };
  for (const auto& c : cases) {
    auto r = parse(c.bytes);
    ASSERT_FALSE(r) << "accepted case expecting " << static_cast<int>(c.expected);
    EXPECT_EQ(r.error(), c.expected) << r.error().message();
    EXPECT_FALSE(r.error().message().empty());
  }
  std::string many = "f\0octet\0"s;
  for (int i = 0; i < 17; ++i)
    many += "opt" + std::to_string(i) + "\0v\0"s;
  auto r = parse(packet(1, many));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), WireError::too_many_options);
}

TEST(TftpWire, LargeButValidNumbersParse) {
  using namespace std::string_view_literals;
  auto r = parse(packet(1,
                        "f\0octet\0tsize\0"
                        "4294967295\0blksize\0"
                        "000512\0"sv));
  ASSERT_TRUE(r) << r.error().message();
}

TEST(TftpWire, DataHeaderMatchesSerialize) {
  std::array<std::uint8_t, 4> h{};
  write_data_header(h, 0x1234);
  const auto full = serialize(Data{0x1234, {}});
  EXPECT_TRUE(std::equal(h.begin(), h.end(), full.begin()));
}

}  // namespace
