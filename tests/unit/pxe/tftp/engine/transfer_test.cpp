#include "pxe/tftp/engine/transfer.hpp"

#include <gtest/gtest.h>

#include <numeric>

namespace {

using namespace lab::pxe::tftp;
using namespace lab::pxe::tftp::engine;
using namespace std::chrono_literals;

std::shared_ptr<const std::vector<std::uint8_t>> content(std::size_t n) {
  auto v = std::make_shared<std::vector<std::uint8_t>>(n);
  for (std::size_t i = 0; i < n; ++i)
    (*v)[i] = static_cast<std::uint8_t>((i * 7 + i / 251) & 0xff);
  return v;
}

wire::Request rrq(std::vector<wire::Option> options = {}) {
  return {wire::Opcode::rrq, "f", wire::Mode::octet, std::move(options)};
}

std::vector<wire::Packet> sent(const Transfer& t) {
  std::vector<wire::Packet> out;
  for (const auto& d : t.outgoing()) {
    auto p = wire::parse(d);
    EXPECT_TRUE(p);
    out.push_back(*p);
  }
  return out;
}

std::vector<std::uint16_t> data_blocks(const Transfer& t) {
  std::vector<std::uint16_t> out;
  for (const auto& p : sent(t)) {
    const auto* d = std::get_if<wire::Data>(&p);
    EXPECT_NE(d, nullptr);
    if (d != nullptr)
      out.push_back(d->block);
  }
  return out;
}

std::vector<std::uint8_t> ack(std::uint16_t block) {
  return wire::serialize(wire::Ack{block});
}

// The fake clock: tests move it by hand.
struct FakeClock {
  TimePoint now{std::chrono::hours(1)};
  void advance(std::chrono::milliseconds d) { now += d; }
};

class FailingSource final : public FileSource {
 public:
  [[nodiscard]] std::uint64_t size() const override { return 4096; }
  lab::Result<std::size_t> read(std::uint64_t, std::span<std::uint8_t>) override {
    return lab::Error(boost::system::errc::make_error_code(boost::system::errc::io_error), "disk");
  }
};

TEST(TftpNegotiation, ClampsToLimitsAndAnswersTsize) {
  Settings s;
  auto n = negotiate(rrq({{"tsize", "0"},
                          {"blksize", "65464"},
                          {"windowsize", "100"},
                          {"timeout", "3"},
                          {"unknown", "7"}}),
                     12345, s);
  EXPECT_EQ(n.blksize, 1468U);
  EXPECT_EQ(n.windowsize, 64U);
  EXPECT_EQ(n.timeout, 3s);
  const std::vector<wire::Option> expected = {
      {"tsize", "12345"}, {"blksize", "1468"}, {"windowsize", "64"}, {"timeout", "3"}};
  EXPECT_EQ(n.oack, expected);
}

TEST(TftpNegotiation, OutOfRangeValuesAreLeftOut) {
  Settings s;
  s.max_blksize = 9000;
  auto n = negotiate(rrq({{"blksize", "7"}, {"windowsize", "0"}, {"timeout", "0"}}), 1, s);
  EXPECT_TRUE(n.oack.empty());
  EXPECT_EQ(n.blksize, 512U);
  EXPECT_EQ(n.windowsize, 1U);
  auto big = negotiate(rrq({{"blksize", "8192"}, {"timeout", "256"}}), 1, s);
  EXPECT_EQ(big.blksize, 8192U);
  ASSERT_EQ(big.oack.size(), 1U);
  EXPECT_EQ(big.timeout, s.timeout);
}

TEST(TftpTransfer, LockStepWithoutOptions) {
  FakeClock clock;
  auto bytes = content(1300);
  Transfer t(rrq(), std::make_unique<MemorySource>(bytes), Settings{});
  t.start(clock.now);
  std::vector<std::uint8_t> received;
  for (std::uint16_t expect = 1; !t.finished(); ++expect) {
    auto packets = sent(t);
    ASSERT_EQ(packets.size(), 1U);
    const auto& d = std::get<wire::Data>(packets[0]);
    ASSERT_EQ(d.block, expect);
    received.insert(received.end(), d.payload.begin(), d.payload.end());
    t.on_datagram(ack(d.block), clock.now);
  }
  EXPECT_TRUE(t.succeeded());
  EXPECT_EQ(received, *bytes);
  EXPECT_EQ(t.bytes_acked(), 1300U);
  EXPECT_TRUE(t.outgoing().empty());
}

TEST(TftpTransfer, ExactMultipleOfBlockSizeEndsWithEmptyBlock) {
  FakeClock clock;
  Transfer t(rrq(), std::make_unique<MemorySource>(content(1024)), Settings{});
  t.start(clock.now);
  t.on_datagram(ack(1), clock.now);
  t.on_datagram(ack(2), clock.now);
  auto last = sent(t);
  ASSERT_EQ(last.size(), 1U);
  EXPECT_EQ(std::get<wire::Data>(last[0]).block, 3);
  EXPECT_TRUE(std::get<wire::Data>(last[0]).payload.empty());
  t.on_datagram(ack(3), clock.now);
  EXPECT_TRUE(t.succeeded());
}

TEST(TftpTransfer, OackThenWindowsThenGoBackOnPartialAck) {
  FakeClock clock;
  auto bytes = content(10 * 100 + 50);  // 11 blocks of 100
  Transfer t(rrq({{"blksize", "100"}, {"windowsize", "4"}, {"tsize", "0"}}),
             std::make_unique<MemorySource>(bytes), Settings{});
  t.start(clock.now);
  auto first = sent(t);
  ASSERT_EQ(first.size(), 1U);
  ASSERT_TRUE(std::holds_alternative<wire::OAck>(first[0]));
  EXPECT_EQ(std::get<wire::OAck>(first[0]).options[2], (wire::Option{"tsize", "1050"}));
  t.on_datagram(ack(1), clock.now);  // not an answer to the OACK
  EXPECT_TRUE(t.outgoing().empty());
  t.on_datagram(ack(0), clock.now);
  EXPECT_EQ(data_blocks(t), (std::vector<std::uint16_t>{1, 2, 3, 4}));
  t.on_datagram(ack(4), clock.now);
  EXPECT_EQ(data_blocks(t), (std::vector<std::uint16_t>{5, 6, 7, 8}));
  // Block 7 was lost: the client acknowledges 6, the server goes back to 7.
  t.on_datagram(ack(6), clock.now);
  EXPECT_EQ(data_blocks(t), (std::vector<std::uint16_t>{7, 8, 9, 10}));
  t.on_datagram(ack(10), clock.now);
  EXPECT_EQ(data_blocks(t), (std::vector<std::uint16_t>{11}));
  EXPECT_EQ(std::get<wire::Data>(sent(t)[0]).payload.size(), 50U);
  t.on_datagram(ack(11), clock.now);
  EXPECT_TRUE(t.succeeded());
  EXPECT_EQ(t.bytes_acked(), 1050U);
  EXPECT_EQ(t.retransmissions(), 2U);  // blocks 7 and 8
}

TEST(TftpTransfer, RetransmitsTheWindowOnTimeout) {
  FakeClock clock;
  Transfer t(rrq({{"blksize", "100"}, {"windowsize", "3"}}),
             std::make_unique<MemorySource>(content(1000)), Settings{});
  t.start(clock.now);
  t.on_datagram(ack(0), clock.now);
  EXPECT_EQ(data_blocks(t), (std::vector<std::uint16_t>{1, 2, 3}));
  EXPECT_EQ(t.deadline(), clock.now + 1s);
  t.on_datagram(ack(2), clock.now);
  EXPECT_EQ(data_blocks(t), (std::vector<std::uint16_t>{3, 4, 5}));
  clock.advance(999ms);
  t.on_timer(clock.now);
  EXPECT_TRUE(t.outgoing().empty());
  clock.advance(1ms);
  t.on_timer(clock.now);
  EXPECT_EQ(data_blocks(t), (std::vector<std::uint16_t>{3, 4, 5}));
}

TEST(TftpTransfer, OackIsRepeatedOnlyAfterTheClientHadTimeToRepeatItsAck) {
  FakeClock clock;
  Transfer t(rrq({{"blksize", "100"}, {"windowsize", "3"}}),
             std::make_unique<MemorySource>(content(1000)), Settings{});
  t.start(clock.now);
  ASSERT_EQ(sent(t).size(), 1U);
  // The client's ACK 0 was lost. A second OACK within 5 s would make atftp abort; atftp repeats
  // its ACK after 5 s of silence.
  for (const auto wait : {1s, 2s}) {
    clock.advance(wait);
    t.on_timer(clock.now);
    EXPECT_TRUE(t.outgoing().empty());
  }
  clock.advance(2s);
  t.on_datagram(ack(0), clock.now);
  EXPECT_EQ(data_blocks(t), (std::vector<std::uint16_t>{1, 2, 3}));
  EXPECT_EQ(t.deadline(), clock.now + 1s);  // progress: back to the base timeout

  // curl asks for timeout 6 and repeats its ACK 0 only after 72 s: the OACK comes again at the
  // first timeout past 6 s of silence, then with backoff.
  Transfer c(rrq({{"blksize", "1468"}, {"timeout", "6"}}),
             std::make_unique<MemorySource>(content(5000)), Settings{});
  c.start(clock.now);
  EXPECT_EQ(c.deadline(), clock.now + 6s);
  clock.advance(6s);
  c.on_timer(clock.now);
  ASSERT_EQ(sent(c).size(), 1U);
  EXPECT_TRUE(std::holds_alternative<wire::OAck>(sent(c)[0]));
  EXPECT_EQ(c.deadline(), clock.now + 8s);

  // With the default 1 s timeout the first OACK repeat comes at 7 s (1 + 2 + 4).
  Transfer d(rrq({{"blksize", "1468"}}), std::make_unique<MemorySource>(content(5000)), Settings{});
  d.start(clock.now);
  for (const auto wait : {1s, 2s}) {
    clock.advance(wait);
    d.on_timer(clock.now);
    EXPECT_TRUE(d.outgoing().empty());
  }
  clock.advance(4s);
  d.on_timer(clock.now);
  ASSERT_EQ(sent(d).size(), 1U);
  EXPECT_TRUE(std::holds_alternative<wire::OAck>(sent(d)[0]));

  // The OACK itself was lost: the client repeats its request, and only that repeats the OACK.
  Transfer lost(rrq({{"blksize", "100"}}), std::make_unique<MemorySource>(content(1000)),
                Settings{});
  lost.start(clock.now);
  clock.advance(1s);
  lost.on_timer(clock.now);
  EXPECT_TRUE(lost.outgoing().empty());
  lost.on_repeated_request(clock.now);  // the client's RRQ again: answered at once
  ASSERT_EQ(sent(lost).size(), 1U);
  EXPECT_TRUE(std::holds_alternative<wire::OAck>(sent(lost)[0]));
  EXPECT_EQ(lost.retransmissions(), 1U);
  lost.on_datagram(ack(0), clock.now);
  EXPECT_EQ(data_blocks(lost), (std::vector<std::uint16_t>{1}));
  lost.on_repeated_request(clock.now);  // a late duplicate once data flows: nothing to do
  EXPECT_TRUE(lost.outgoing().empty());
}

TEST(TftpTransfer, RepeatedRequestWithoutOptionsResendsTheFirstBlock) {
  FakeClock clock;
  Transfer t(rrq(), std::make_unique<MemorySource>(content(2000)), Settings{});
  t.start(clock.now);
  t.on_repeated_request(clock.now);
  EXPECT_EQ(data_blocks(t), (std::vector<std::uint16_t>{1}));
  t.on_datagram(ack(1), clock.now);
  t.on_repeated_request(clock.now);
  EXPECT_TRUE(t.outgoing().empty());
}

TEST(TftpTransfer, TimeoutsBackOffExponentiallyAndProgressResetsThem) {
  // A client that re-acknowledges only after 5 s without any datagram (atftp) gets that quiet
  // spell after three retransmissions.
  FakeClock clock;
  Transfer t(rrq({{"blksize", "100"}, {"windowsize", "4"}}),
             std::make_unique<MemorySource>(content(2000)), Settings{});
  t.start(clock.now);
  t.on_datagram(ack(0), clock.now);
  t.on_datagram(ack(4), clock.now);
  for (const auto wait : {1s, 2s, 4s, 8s, 8s}) {
    EXPECT_EQ(t.deadline(), clock.now + wait);
    clock.advance(wait);
    t.on_timer(clock.now);
    EXPECT_EQ(data_blocks(t), (std::vector<std::uint16_t>{5, 6, 7, 8}));
  }
  t.on_datagram(ack(8), clock.now);
  EXPECT_EQ(data_blocks(t), (std::vector<std::uint16_t>{9, 10, 11, 12}));
  EXPECT_EQ(t.deadline(), clock.now + 1s);
  EXPECT_FALSE(t.finished());
}

TEST(TftpTransfer, DuplicateAckInLockStepIsIgnored) {
  FakeClock clock;
  Transfer t(rrq(), std::make_unique<MemorySource>(content(2000)), Settings{});
  t.start(clock.now);
  t.on_datagram(ack(1), clock.now);
  EXPECT_EQ(data_blocks(t), (std::vector<std::uint16_t>{2}));
  t.on_datagram(ack(1), clock.now);  // would double every later block (RFC 1123 4.2.3.1)
  EXPECT_TRUE(t.outgoing().empty());
  t.on_datagram(ack(0), clock.now);  // older still
  EXPECT_TRUE(t.outgoing().empty());
}

TEST(TftpTransfer, DuplicateAckWithWindowGoesBackOnce) {
  FakeClock clock;
  Transfer t(rrq({{"blksize", "100"}, {"windowsize", "4"}}),
             std::make_unique<MemorySource>(content(2000)), Settings{});
  t.start(clock.now);
  t.on_datagram(ack(0), clock.now);
  t.on_datagram(ack(4), clock.now);
  EXPECT_EQ(data_blocks(t), (std::vector<std::uint16_t>{5, 6, 7, 8}));
  t.on_datagram(ack(4), clock.now);
  EXPECT_EQ(data_blocks(t), (std::vector<std::uint16_t>{5, 6, 7, 8}));
  t.on_datagram(ack(4), clock.now);
  EXPECT_TRUE(t.outgoing().empty());
  t.on_datagram(ack(2), clock.now);  // an old ACK overtaken by ACK 4
  EXPECT_TRUE(t.outgoing().empty());
  t.on_datagram(ack(9), clock.now);  // a block never sent
  EXPECT_TRUE(t.outgoing().empty());
}

TEST(TftpTransfer, BlockNumbersRollOverPast65535) {
  FakeClock clock;
  const std::size_t blocks = 70000;
  auto bytes = content(blocks * 8 + 3);
  Transfer t(rrq({{"blksize", "8"}, {"windowsize", "64"}}), std::make_unique<MemorySource>(bytes),
             Settings{});
  t.start(clock.now);
  t.on_datagram(ack(0), clock.now);
  std::vector<std::uint8_t> received;
  std::uint64_t expect = 1;
  bool saw_wrap = false;
  while (!t.finished()) {
    auto packets = sent(t);
    ASSERT_FALSE(packets.empty());
    std::uint16_t last = 0;
    for (const auto& p : packets) {
      const auto& d = std::get<wire::Data>(p);
      ASSERT_EQ(d.block, static_cast<std::uint16_t>(expect));
      if (expect == 65536) {
        EXPECT_EQ(d.block, 0);
        saw_wrap = true;
      }
      received.insert(received.end(), d.payload.begin(), d.payload.end());
      last = d.block;
      ++expect;
    }
    t.on_datagram(ack(last), clock.now);
  }
  EXPECT_TRUE(saw_wrap);
  EXPECT_TRUE(t.succeeded());
  EXPECT_EQ(received, *bytes);
}

TEST(TftpTransfer, ClientAbortAfterOackEndsTheTransfer) {
  // OVMF asks with tsize, reads the size from the OACK and aborts with error 8.
  FakeClock clock;
  Transfer t(rrq({{"tsize", "0"}, {"blksize", "1468"}, {"windowsize", "4"}}),
             std::make_unique<MemorySource>(content(5000)), Settings{});
  t.start(clock.now);
  t.on_datagram(wire::serialize(wire::ErrorPacket{8, "User aborted the transfer"}), clock.now);
  EXPECT_TRUE(t.failed());
  EXPECT_EQ(t.error(), EngineError::client_error);
  EXPECT_NE(t.error().detail().find("code 8"), std::string::npos);
  EXPECT_TRUE(t.outgoing().empty());  // never answer an ERROR
  clock.advance(10s);
  t.on_timer(clock.now);
  EXPECT_TRUE(t.outgoing().empty());
}

TEST(TftpTransfer, GivesUpAfterBoundedRetries) {
  FakeClock clock;
  Settings s;
  s.max_retries = 3;
  Transfer t(rrq(), std::make_unique<MemorySource>(content(5000)), s);
  t.start(clock.now);
  for (int i = 0; i < 3; ++i) {
    clock.advance(std::chrono::seconds(1 << i));
    t.on_timer(clock.now);
    EXPECT_EQ(data_blocks(t), (std::vector<std::uint16_t>{1}));
  }
  clock.advance(8s);
  t.on_timer(clock.now);
  EXPECT_TRUE(t.failed());
  EXPECT_EQ(t.error(), EngineError::timed_out);
  auto last = sent(t);
  ASSERT_EQ(last.size(), 1U);
  EXPECT_EQ(std::get<wire::ErrorPacket>(last[0]).code, 0);
}

TEST(TftpTransfer, ClientThatNeverAcknowledgesTheOackIsDroppedInBoundedTime) {
  FakeClock clock;
  Transfer t(rrq({{"blksize", "1468"}}), std::make_unique<MemorySource>(content(5000)), Settings{});
  t.start(clock.now);
  const auto started = clock.now;
  while (!t.finished()) {
    clock.now = t.deadline();
    t.on_timer(clock.now);
    ASSERT_LE(clock.now - started, 31s);
  }
  EXPECT_EQ(t.error(), EngineError::timed_out);
}

// A client that acknowledges just often enough never times out; the time limit ends it anyway.
TEST(TftpTransfer, SlowButSteadyClientIsStoppedAtTheTimeLimit) {
  FakeClock clock;
  Settings s;
  s.max_transfer_time = 10s;
  Transfer t(rrq({{"blksize", "100"}}), std::make_unique<MemorySource>(content(100'000)), s);
  const auto started = clock.now;
  t.start(clock.now);
  EXPECT_EQ(t.deadline(), started + 1s);  // the OACK's retransmission comes first
  clock.advance(900ms);
  t.on_datagram(ack(0), clock.now);
  std::uint16_t block = 1;
  while (clock.now + 900ms < started + 10s) {
    ASSERT_EQ(data_blocks(t), (std::vector<std::uint16_t>{block}));
    EXPECT_LE(t.deadline(), started + 10s);
    clock.advance(900ms);
    t.on_timer(clock.now);  // before the retransmission timeout: nothing to do
    EXPECT_TRUE(t.outgoing().empty());
    t.on_datagram(ack(block++), clock.now);
  }
  ASSERT_FALSE(t.finished());
  EXPECT_EQ(t.deadline(), started + 10s);  // the limit comes before the retransmission
  clock.now = t.deadline();
  t.on_timer(clock.now);
  EXPECT_TRUE(t.failed());
  EXPECT_EQ(t.error(), EngineError::time_limit);
  const auto last = sent(t);
  ASSERT_EQ(last.size(), 1U);  // the ERROR only, no more DATA
  EXPECT_EQ(std::get<wire::ErrorPacket>(last[0]).code, 0);
  EXPECT_EQ(std::get<wire::ErrorPacket>(last[0]).message, "transfer time limit reached");
}

TEST(TftpTransfer, AckPastTheTimeLimitEndsTheTransferUnlessItIsTheLast) {
  FakeClock clock;
  Settings s;
  s.max_transfer_time = 10s;
  // Acknowledging block 1 of 3 after the limit: the transfer ends instead of going on.
  Transfer t(rrq(), std::make_unique<MemorySource>(content(1200)), s);
  t.start(clock.now);
  clock.advance(11s);
  t.on_datagram(ack(1), clock.now);
  EXPECT_TRUE(t.failed());
  EXPECT_EQ(t.error(), EngineError::time_limit);
  const auto out = sent(t);
  ASSERT_EQ(out.size(), 1U);
  EXPECT_TRUE(std::holds_alternative<wire::ErrorPacket>(out[0]));

  // Acknowledging the last block after the limit: the client has the whole file.
  Transfer u(rrq(), std::make_unique<MemorySource>(content(100)), s);
  u.start(clock.now);
  clock.advance(11s);
  u.on_datagram(ack(1), clock.now);
  EXPECT_TRUE(u.succeeded());
  EXPECT_TRUE(u.outgoing().empty());
}

TEST(TftpTransfer, ClientTimeoutOptionSetsTheDeadline) {
  FakeClock clock;
  Transfer t(rrq({{"timeout", "5"}}), std::make_unique<MemorySource>(content(10)), Settings{});
  t.start(clock.now);
  EXPECT_EQ(t.deadline(), clock.now + 5s);
}

TEST(TftpTransfer, IllegalPacketIsAnsweredAndEnds) {
  FakeClock clock;
  Transfer t(rrq(), std::make_unique<MemorySource>(content(5000)), Settings{});
  t.start(clock.now);
  t.on_datagram(wire::serialize(wire::Data{1, {1, 2}}), clock.now);
  EXPECT_TRUE(t.failed());
  EXPECT_EQ(t.error(), EngineError::illegal_packet);
  EXPECT_EQ(std::get<wire::ErrorPacket>(sent(t).at(0)).code, 4);
}

TEST(TftpTransfer, ClientGoneEndsWithoutSending) {
  FakeClock clock;
  Transfer t(rrq(), std::make_unique<MemorySource>(content(5000)), Settings{});
  t.start(clock.now);
  t.on_client_gone();
  EXPECT_TRUE(t.failed());
  EXPECT_EQ(t.error(), EngineError::client_gone);
  EXPECT_TRUE(t.outgoing().empty());
  t.on_timer(t.deadline());
  EXPECT_TRUE(t.outgoing().empty());
}

TEST(TftpTransfer, GarbageIsIgnored) {
  FakeClock clock;
  Transfer t(rrq(), std::make_unique<MemorySource>(content(5000)), Settings{});
  t.start(clock.now);
  const std::vector<std::uint8_t> junk = {0, 4, 1};
  t.on_datagram(junk, clock.now);
  EXPECT_FALSE(t.finished());
  EXPECT_TRUE(t.outgoing().empty());
}

TEST(TftpTransfer, ReadFailureIsReported) {
  FakeClock clock;
  Transfer t(rrq(), std::make_unique<FailingSource>(), Settings{});
  t.start(clock.now);
  EXPECT_TRUE(t.failed());
  EXPECT_EQ(t.error(), EngineError::read_failed);
  EXPECT_EQ(std::get<wire::ErrorPacket>(sent(t).at(0)).code, 0);
}

TEST(TftpNetascii, ConvertsLineEnds) {
  const std::string in = "a\nb\rc";
  auto out = to_netascii({reinterpret_cast<const std::uint8_t*>(in.data()), in.size()});
  const std::vector<std::uint8_t> expected = {'a', '\r', '\n', 'b', '\r', 0, 'c'};
  EXPECT_EQ(out, expected);
}

}  // namespace
