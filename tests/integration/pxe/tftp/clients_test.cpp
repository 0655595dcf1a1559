// Real TFTP clients (tftp-hpa, atftp, curl) and exact packets against the server in-process on
// loopback, where its events can be checked. The 40 MiB transfers run against `lab serve`
// (serve_test.cpp).
#include "pxe/tftp/wire/packet.hpp"
#include "tests/integration/pxe/tftp/harness.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <thread>

namespace {

using namespace lab::tests;
using namespace lab::tests::tftp;
using lab::pxe::events::Kind;
namespace wire = lab::pxe::tftp::wire;

constexpr std::size_t kOneMiB = 1U << 20;

class TftpClients : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path() / "root";
    std::filesystem::create_directories(root_ / "boot");
    write_pattern(root_ / "one.bin", kOneMiB, 1);
    write_pattern(dir_.path() / "outside.txt", 100, 2);
    std::filesystem::create_symlink(dir_.path() / "outside.txt", root_ / "escape");
    std::filesystem::create_symlink("/dev/zero", root_ / "zero");
    std::filesystem::create_symlink("../one.bin", root_ / "boot/one-link");
  }

  lab::pxe::tftp::server::ServerConfig config() const {
    lab::pxe::tftp::server::ServerConfig c;
    c.address = "127.0.0.1";
    c.port = 0;
    c.root = root_;
    return c;
  }

  std::string port_of(const TestServer& s) const { return std::to_string(s.port()); }

  // The finished transfer of `file`, checked against its size and the expected options.
  static void expect_done(const TestServer& s, const std::string& file, std::size_t bytes,
                          const std::string& blksize, const std::string& windowsize) {
    ASSERT_TRUE(wait_until([&] { return !s.sink().of(Kind::tftp_done).empty(); }, 5s));
    const auto done = s.sink().of(Kind::tftp_done).back();
    EXPECT_EQ(done.ip, "127.0.0.1");
    EXPECT_EQ(detail(done, "file"), file);
    EXPECT_EQ(detail(done, "bytes"), std::to_string(bytes));
    EXPECT_EQ(detail(done, "blksize"), blksize);
    EXPECT_EQ(detail(done, "windowsize"), windowsize);
    EXPECT_FALSE(detail(done, "ms").empty());
    // Every transfer that started ended, done or failed; refusals carry no byte count.
    std::size_t failed = 0;
    for (const auto& e : s.sink().of(Kind::tftp_error))
      failed += detail(e, "bytes").empty() ? 0 : 1;
    EXPECT_EQ(s.sink().of(Kind::tftp_start).size(), s.sink().of(Kind::tftp_done).size() + failed);
  }

  TempDir dir_{"lab-tftp-it"};
  std::filesystem::path root_;
};

TEST_F(TftpClients, TftpHpaGetsOneMiB) {
  LAB_REQUIRE_PROGRAM("tftp");
  TestServer s(config());
  auto out = dir_.path() / "out.bin";
  auto r =
      run({"tftp", "127.0.0.1", port_of(s), "-m", "binary", "-c", "get", "one.bin", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(same_content(out, root_ / "one.bin"));
  expect_done(s, "one.bin", kOneMiB, "512", "1");
}

TEST_F(TftpClients, AtftpWindowedGetsOneMiB) {
  LAB_REQUIRE_PROGRAM("atftp");
  TestServer s(config());
  auto out = dir_.path() / "out.bin";
  auto r = run({"atftp", "--option", "blksize 1468", "--option", "windowsize 8", "-g", "-r",
                "one.bin", "-l", out.string(), "127.0.0.1", port_of(s)});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(same_content(out, root_ / "one.bin"));
  expect_done(s, "one.bin", kOneMiB, "1468", "8");
}

TEST_F(TftpClients, CurlGetsOneMiBWithLargeBlocks) {
  LAB_REQUIRE_PROGRAM("curl");
  TestServer s(config());
  auto out = dir_.path() / "out.bin";
  auto r = run({"curl", "-sS", "--tftp-blksize", "1468", "-o", out.string(),
                "tftp://127.0.0.1:" + port_of(s) + "/one.bin"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(same_content(out, root_ / "one.bin"));
  expect_done(s, "one.bin", kOneMiB, "1468", "1");
}

TEST_F(TftpClients, SymlinkInsideTheRootIsServed) {
  LAB_REQUIRE_PROGRAM("curl");
  TestServer s(config());
  auto out = dir_.path() / "out.bin";
  auto r =
      run({"curl", "-sS", "-o", out.string(), "tftp://127.0.0.1:" + port_of(s) + "/boot/one-link"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(same_content(out, root_ / "one.bin"));
}

TEST_F(TftpClients, ManyClientsAtOnce) {
  LAB_REQUIRE_PROGRAM("curl");
  auto cfg = config();
  cfg.max_transfers_per_client = 20;  // all twenty come from 127.0.0.1
  TestServer s(cfg);
  std::string script;
  for (int i = 0; i < 20; ++i) {
    script += "curl -sS --tftp-blksize 1468 -o " +
              (dir_.path() / ("c" + std::to_string(i))).string() +
              " tftp://127.0.0.1:" + port_of(s) + "/one.bin & ";
  }
  script += "wait";
  auto r = sh(script, 120s);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (int i = 0; i < 20; ++i)
    EXPECT_TRUE(same_content(dir_.path() / ("c" + std::to_string(i)), root_ / "one.bin")) << i;
  ASSERT_TRUE(wait_until([&] { return s.sink().of(Kind::tftp_done).size() == 20; }, 5s));
}

// The ERROR packet the server answers a raw RRQ for `name` with.
wire::ErrorPacket refusal(const TestServer& s, const std::string& name) {
  RawClient c;
  c.send(s.port(), wire::serialize(wire::Request{wire::Opcode::rrq, name, wire::Mode::octet, {}}));
  auto d = c.receive(3s);
  if (!d)
    return {999, "no answer"};
  auto p = wire::parse(d->bytes);
  if (!p || !std::holds_alternative<wire::ErrorPacket>(*p))
    return {998, "not an ERROR"};
  return std::get<wire::ErrorPacket>(*p);
}

TEST_F(TftpClients, TraversalIsRefusedWithErrorPackets) {
  TestServer s(config());
  for (const char* name : {"../etc/passwd", "boot/../../outside.txt", "escape", "zero", "boot"}) {
    const auto e = refusal(s, name);
    EXPECT_EQ(e.code, 2) << name << ": " << e.message;
    EXPECT_EQ(e.message, "access violation") << name;
  }
  EXPECT_EQ(refusal(s, "missing.bin").code, 1);
  EXPECT_EQ(s.sink().of(Kind::tftp_error).size(), 6U);
  EXPECT_TRUE(s.sink().of(Kind::tftp_start).empty());
}

TEST_F(TftpClients, RealClientsSeeTheRefusals) {
  LAB_REQUIRE_PROGRAM("tftp");
  LAB_REQUIRE_PROGRAM("curl");
  TestServer s(config());
  auto out = dir_.path() / "out.bin";
  for (const char* name : {"../etc/passwd", "escape", "zero"}) {
    auto r =
        run({"tftp", "127.0.0.1", port_of(s), "-m", "binary", "-c", "get", name, out.string()});
    EXPECT_NE(r.output.find("Error code 2: access violation"), std::string::npos)
        << name << ": " << r.output;
  }
  // A leading '/' names a file relative to the root, as with tftp-hpa -s.
  auto abs =
      run({"tftp", "127.0.0.1", port_of(s), "-m", "binary", "-c", "get", "/one.bin", out.string()});
  EXPECT_EQ(abs.exit_code, 0) << abs.output;
  EXPECT_TRUE(same_content(out, root_ / "one.bin"));
  auto c = run({"curl", "-sS", "--path-as-is", "-o", out.string(),
                "tftp://127.0.0.1:" + port_of(s) + "/../etc/passwd"});
  EXPECT_EQ(c.exit_code, 69) << c.output;  // CURLE_TFTP_PERM
  auto put = run({"tftp", "127.0.0.1", port_of(s), "-m", "binary", "-c", "put",
                  (root_ / "one.bin").string(), "new.bin"});
  EXPECT_NE(put.output.find("read-only server"), std::string::npos) << put.output;
  EXPECT_FALSE(std::filesystem::exists(root_ / "new.bin"));
}

TEST_F(TftpClients, MalformedRequestsGetClearErrors) {
  TestServer s(config());
  RawClient c;
  using namespace std::string_view_literals;
  auto ask = [&](std::string_view body) {
    std::vector<std::uint8_t> b(2 + body.size());  // RRQ; sized once (GCC 12 -O3 bounds check)
    b[1] = 1;
    std::copy(body.begin(), body.end(), b.begin() + 2);
    c.send(s.port(), b);
    auto d = c.receive(3s);
    EXPECT_TRUE(d);
    auto p = wire::parse(d ? d->bytes : std::vector<std::uint8_t>{});
    EXPECT_TRUE(p && std::holds_alternative<wire::ErrorPacket>(*p));
    return p && std::holds_alternative<wire::ErrorPacket>(*p) ? std::get<wire::ErrorPacket>(*p)
                                                              : wire::ErrorPacket{};
  };
  auto no_nul = ask("one.bin");
  EXPECT_EQ(no_nul.code, 4);
  EXPECT_NE(no_nul.message.find("NUL"), std::string::npos) << no_nul.message;
  auto dup =
      ask("one.bin\0octet\0blksize\0"
          "512\0blksize\0"
          "1024\0"sv);
  EXPECT_EQ(dup.code, 8);
  EXPECT_NE(dup.message.find("twice"), std::string::npos) << dup.message;
  auto negative = ask("one.bin\0octet\0windowsize\0-4\0"sv);
  EXPECT_EQ(negative.code, 8);
  auto absurd =
      ask("one.bin\0octet\0blksize\0"
          "123456789012\0"sv);
  EXPECT_EQ(absurd.code, 8);
  // An unknown opcode on port 69 is answered too, once.
  c.send(s.port(), {0, 42, 1, 2});
  auto d = c.receive(3s);
  ASSERT_TRUE(d);
  EXPECT_EQ(std::get<wire::ErrorPacket>(*wire::parse(d->bytes)).code, 4);
}

TEST_F(TftpClients, OvmfAbortsAfterOackThenAsksAgain) {
  TestServer s(config());
  RawClient c;
  c.send(s.port(), wire::serialize(
                       wire::Request{wire::Opcode::rrq,
                                     "one.bin",
                                     wire::Mode::octet,
                                     {{"tsize", "0"}, {"blksize", "1468"}, {"windowsize", "4"}}}));
  auto oack = c.receive(3s);
  ASSERT_TRUE(oack);
  auto p = wire::parse(oack->bytes);
  ASSERT_TRUE(p && std::holds_alternative<wire::OAck>(*p));
  const std::vector<wire::Option> expected = {
      {"tsize", std::to_string(kOneMiB)}, {"blksize", "1468"}, {"windowsize", "4"}};
  EXPECT_EQ(std::get<wire::OAck>(*p).options, expected);
  EXPECT_NE(oack->from_port, s.port());  // a new TID
  c.send(oack->from_port, wire::serialize(wire::ErrorPacket{8, "User aborted"}));
  ASSERT_TRUE(wait_until([&] { return !s.sink().of(Kind::tftp_error).empty(); }, 3s));
  EXPECT_NE(detail(s.sink().of(Kind::tftp_error)[0], "error").find("code 8"), std::string::npos);
  ASSERT_TRUE(wait_until([&] { return s.active_transfers() == 0; }, 3s));

  // Second request without tsize: the whole file in windows of 4.
  c.send(s.port(), wire::serialize(wire::Request{wire::Opcode::rrq,
                                                 "one.bin",
                                                 wire::Mode::octet,
                                                 {{"blksize", "1468"}, {"windowsize", "4"}}}));
  auto oack2 = c.receive(3s);
  ASSERT_TRUE(oack2);
  const std::uint16_t tid = oack2->from_port;
  c.send(tid, wire::serialize(wire::Ack{0}));
  std::vector<std::uint8_t> got;
  std::uint16_t expect = 1;
  bool last = false;
  while (!last) {
    for (int i = 0; i < 4 && !last; ++i) {
      auto d = c.receive(3s);
      ASSERT_TRUE(d) << "block " << expect;
      ASSERT_EQ(d->from_port, tid);
      auto data = std::get<wire::Data>(*wire::parse(d->bytes));
      ASSERT_EQ(data.block, expect);
      got.insert(got.end(), data.payload.begin(), data.payload.end());
      last = data.payload.size() < 1468;
      ++expect;
    }
    c.send(tid, wire::serialize(wire::Ack{static_cast<std::uint16_t>(expect - 1)}));
  }
  EXPECT_EQ(got.size(), kOneMiB);
  expect_done(s, "one.bin", kOneMiB, "1468", "4");
}

TEST_F(TftpClients, BusyWhenTheTransferCapIsReached) {
  auto cfg = config();
  cfg.max_transfers = 1;
  TestServer s(cfg);
  RawClient holder;
  holder.send(s.port(),
              wire::serialize(wire::Request{wire::Opcode::rrq, "one.bin", wire::Mode::octet, {}}));
  ASSERT_TRUE(holder.receive(3s));  // DATA 1, never acknowledged
  RawClient second;
  second.send(s.port(),
              wire::serialize(wire::Request{wire::Opcode::rrq, "one.bin", wire::Mode::octet, {}}));
  auto d = second.receive(3s);
  ASSERT_TRUE(d);
  const auto e = std::get<wire::ErrorPacket>(*wire::parse(d->bytes));
  EXPECT_EQ(e.code, 0);
  EXPECT_NE(e.message.find("busy"), std::string::npos);
}

TEST_F(TftpClients, OneAddressMayHoldOnlyItsShareOfTransfers) {
  auto cfg = config();
  cfg.max_transfers_per_client = 2;
  TestServer s(cfg);
  const auto rrq =
      wire::serialize(wire::Request{wire::Opcode::rrq, "one.bin", wire::Mode::octet, {}});
  RawClient first("127.0.0.2");
  RawClient second("127.0.0.2");
  RawClient third("127.0.0.2");
  first.send(s.port(), rrq);
  second.send(s.port(), rrq);
  auto d1 = first.receive(3s);  // DATA 1, never acknowledged
  auto d2 = second.receive(3s);
  ASSERT_TRUE(d1 && d2);
  third.send(s.port(), rrq);
  auto d3 = third.receive(3s);
  ASSERT_TRUE(d3);
  const auto e = std::get<wire::ErrorPacket>(*wire::parse(d3->bytes));
  EXPECT_EQ(e.code, 0);
  EXPECT_EQ(e.message, "too many transfers from this address, try again later");
  ASSERT_EQ(s.sink().of(Kind::tftp_error).size(), 1U);
  const auto refused = s.sink().of(Kind::tftp_error)[0];
  EXPECT_EQ(refused.ip, "127.0.0.2");
  EXPECT_EQ(detail(refused, "error"), "too many transfers from this address (2 running)");

  // Another address is served meanwhile; once one of the two ends, the address may start one.
  RawClient other;
  other.send(s.port(), rrq);
  auto d4 = other.receive(3s);
  ASSERT_TRUE(d4);
  EXPECT_TRUE(std::holds_alternative<wire::Data>(*wire::parse(d4->bytes)));
  first.send(d1->from_port, wire::serialize(wire::ErrorPacket{0, "done"}));
  ASSERT_TRUE(wait_until([&] { return s.active_transfers() == 2; }, 3s));
  third.send(s.port(), rrq);
  auto d5 = third.receive(3s);
  ASSERT_TRUE(d5);
  EXPECT_TRUE(std::holds_alternative<wire::Data>(*wire::parse(d5->bytes)));
  for (const auto& [client, datagram] :
       {std::pair{&second, &d2}, std::pair{&other, &d4}, std::pair{&third, &d5}})
    client->send((*datagram)->from_port, wire::serialize(wire::ErrorPacket{0, "done"}));
  EXPECT_TRUE(wait_until([&] { return s.active_transfers() == 0; }, 3s));
}

// A client that acknowledges just often enough never times out; the time limit ends its
// transfer with an ERROR.
TEST_F(TftpClients, TransferPastItsTimeLimitIsAborted) {
  auto cfg = config();
  cfg.transfer.max_transfer_time = 1s;
  TestServer s(cfg);
  RawClient c;
  c.send(s.port(),
         wire::serialize(wire::Request{wire::Opcode::rrq, "one.bin", wire::Mode::octet, {}}));
  std::optional<wire::ErrorPacket> error;
  int blocks = 0;
  for (int i = 0; i < 50 && !error; ++i) {
    auto d = c.receive(3s);
    ASSERT_TRUE(d);
    auto p = wire::parse(d->bytes);
    ASSERT_TRUE(p);
    if (const auto* e = std::get_if<wire::ErrorPacket>(&*p)) {
      error = *e;
      break;
    }
    ++blocks;
    std::this_thread::sleep_for(200ms);  // a slow client: well inside the 1 s retransmission
    c.send(d->from_port, wire::serialize(wire::Ack{std::get<wire::Data>(*p).block}));
  }
  ASSERT_TRUE(error) << "still running after " << blocks << " blocks";
  EXPECT_EQ(error->message, "transfer time limit reached");
  EXPECT_GE(blocks, 2);
  EXPECT_LE(blocks, 6);
  ASSERT_TRUE(wait_until([&] { return !s.sink().of(Kind::tftp_error).empty(); }, 3s));
  EXPECT_NE(detail(s.sink().of(Kind::tftp_error)[0], "error").find("time limit"),
            std::string::npos);
  EXPECT_TRUE(wait_until([&] { return s.active_transfers() == 0; }, 1s));
}

TEST_F(TftpClients, ClientThatGoesAwayEndsItsTransferAtTheFirstRetransmission) {
  TestServer s(config());
  {
    RawClient gone;
    gone.send(s.port(),
              wire::serialize(wire::Request{wire::Opcode::rrq, "one.bin", wire::Mode::octet, {}}));
    ASSERT_TRUE(gone.receive(3s));  // DATA 1; then the client's port closes
  }
  // The retransmission after 1 s meets ICMP port unreachable: the transfer ends then, not
  // after five retransmissions (about 6 s).
  ASSERT_TRUE(wait_until([&] { return !s.sink().of(Kind::tftp_error).empty(); }, 3500ms));
  EXPECT_NE(detail(s.sink().of(Kind::tftp_error)[0], "error").find("unreachable"),
            std::string::npos)
      << detail(s.sink().of(Kind::tftp_error)[0], "error");
  EXPECT_TRUE(wait_until([&] { return s.active_transfers() == 0; }, 1s));
}

}  // namespace
