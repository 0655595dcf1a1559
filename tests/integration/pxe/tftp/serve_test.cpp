// The real `lab serve` with only the tftp component enabled, on loopback, fetched from by the
// real clients (tftp-hpa, atftp, curl) and fed malformed datagrams over a real socket.
#include "pxe/tftp/wire/packet.hpp"
#include "shared/crypto/encoding.hpp"
#include "shared/crypto/hash.hpp"
#include "tests/integration/pxe/tftp/harness.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

namespace {

using namespace lab::tests;
using namespace lab::tests::tftp;
namespace wire = lab::pxe::tftp::wire;

constexpr std::size_t kOneMiB = 1U << 20;
constexpr std::size_t kFortyMiB = 40U << 20;

std::uint16_t free_udp_port() {
  boost::asio::io_context io;
  boost::asio::ip::udp::socket s(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return s.local_endpoint().port();
}

std::string sha256_of(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path))
    return "missing " + path.string();
  return lab::shared::crypto::hex_encode(lab::shared::crypto::sha256(read_file(path)));
}

// key=value pairs of every debug line "transfer done" the server logged.
std::vector<std::map<std::string, std::string>> transfers_done(const std::string& log) {
  std::vector<std::map<std::string, std::string>> out;
  std::istringstream lines(log);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find("msg=\"transfer done\"") == std::string::npos)
      continue;
    std::map<std::string, std::string> fields;
    std::istringstream words(line);
    std::string word;
    while (words >> word) {
      if (const auto eq = word.find('='); eq != std::string::npos)
        fields[word.substr(0, eq)] = word.substr(eq + 1);
    }
    out.push_back(std::move(fields));
  }
  return out;
}

class LabServeTftp : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path() / "root";
    std::filesystem::create_directories(root_ / "boot");
    write_pattern(root_ / "one.bin", kOneMiB, 21);
    write_pattern(dir_.path() / "secret.txt", 64, 22);
    std::filesystem::create_symlink(dir_.path() / "secret.txt", root_ / "escape");
    std::filesystem::create_symlink("/dev/zero", root_ / "zero");
    port_ = std::to_string(free_udp_port());
    serve_.emplace(ChildProcess::start(
        {.argv = {lab_binary(), "serve", "--data-dir", dir_.path() / "data", "--set",
                  "log.level=debug", "--set", "coordinator.enabled=false", "--set",
                  "tftp.enabled=true", "--set", "tftp.listen=127.0.0.1:" + port_, "--set",
                  "tftp.root=" + root_.string()},
         .env = {},
         .netns = {},
         .log = {}}));
    ASSERT_TRUE(wait_until([&] { return serve_->output().find("msg=ready") != std::string::npos; }))
        << serve_->output();
    ASSERT_NE(serve_->output().find("component=tftp msg=listening"), std::string::npos);
  }

  void TearDown() override {
    // A clean stop waits for transfers in flight, such as those the fuzz inputs started for
    // clients that went away (they end at their first retransmission).
    if (serve_) {
      EXPECT_EQ(serve_->stop(20s), 0) << serve_->output();
    }
  }

  std::string url(const std::string& file) const {
    return "tftp://127.0.0.1:" + port_ + "/" + file;
  }

  // The server logged a finished transfer of `file` with these figures.
  void expect_done(const std::string& file, std::size_t bytes, const std::string& blksize,
                   const std::string& windowsize) const {
    const bool found = wait_until(
        [&] {
          for (const auto& t : transfers_done(serve_->output())) {
            if (t.at("file") == file && t.at("bytes") == std::to_string(bytes) &&
                t.at("blksize") == blksize && t.at("windowsize") == windowsize) {
              return true;
            }
          }
          return false;
        },
        5s);
    EXPECT_TRUE(found) << file << " blksize " << blksize << " windowsize " << windowsize << "\n"
                       << serve_->output();
  }

  TempDir dir_{"lab-tftp-serve"};
  std::filesystem::path root_;
  std::string port_;
  std::optional<ChildProcess> serve_;
};

TEST_F(LabServeTftp, RealClientsFetchOneMiBByteIdentical) {
  LAB_REQUIRE_PROGRAM("tftp");
  LAB_REQUIRE_PROGRAM("atftp");
  LAB_REQUIRE_PROGRAM("curl");
  const std::string want = sha256_of(root_ / "one.bin");

  const auto hpa = dir_.path() / "hpa.bin";
  auto r = run({"tftp", "127.0.0.1", port_, "-m", "binary", "-c", "get", "one.bin", hpa.string()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(sha256_of(hpa), want);
  expect_done("one.bin", kOneMiB, "512", "1");

  const auto at = dir_.path() / "atftp.bin";
  r = run({"atftp", "--option", "blksize 1468", "--option", "windowsize 8", "-g", "-r", "one.bin",
           "-l", at.string(), "127.0.0.1", port_});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(sha256_of(at), want);
  expect_done("one.bin", kOneMiB, "1468", "8");  // windowsize negotiated by OACK

  const auto cu = dir_.path() / "curl.bin";
  r = run({"curl", "-sS", "--tftp-blksize", "1468", "-o", cu.string(), url("one.bin")});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(sha256_of(cu), want);
  expect_done("one.bin", kOneMiB, "1468", "1");
}

// 40 MiB in 512-byte blocks is 81,921 blocks: every client crosses block 65535 and wraps to 0.
TEST_F(LabServeTftp, RealClientsFetchFortyMiBAcrossBlockRollover) {
  LAB_REQUIRE_PROGRAM("tftp");
  LAB_REQUIRE_PROGRAM("atftp");
  LAB_REQUIRE_PROGRAM("curl");
  write_pattern(root_ / "big.bin", kFortyMiB, 23);
  const std::string want = sha256_of(root_ / "big.bin");

  const auto hpa = dir_.path() / "hpa.bin";
  auto r =
      run({"tftp", "127.0.0.1", port_, "-m", "binary", "-c", "get", "big.bin", hpa.string()}, 180s);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(sha256_of(hpa), want);
  expect_done("big.bin", kFortyMiB, "512", "1");

  const auto at = dir_.path() / "atftp.bin";
  r = run({"atftp", "--option", "blksize 512", "--option", "windowsize 16", "-g", "-r", "big.bin",
           "-l", at.string(), "127.0.0.1", port_},
          180s);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(sha256_of(at), want);
  expect_done("big.bin", kFortyMiB, "512", "16");

  const auto cu = dir_.path() / "curl.bin";
  r = run({"curl", "-sS", "--tftp-blksize", "512", "-o", cu.string(), url("big.bin")}, 180s);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(sha256_of(cu), want);
  // curl sends blksize 512 and tsize: both acknowledged, no window.
  expect_done("big.bin", kFortyMiB, "512", "1");
}

// The ERROR packet `lab serve` answers a raw request for `name` with.
wire::ErrorPacket refusal(std::uint16_t port, const std::string& name) {
  RawClient c;
  c.send(port, wire::serialize(wire::Request{wire::Opcode::rrq, name, wire::Mode::octet, {}}));
  auto d = c.receive(3s);
  if (!d)
    return {999, "no answer"};
  auto p = wire::parse(d->bytes);
  if (!p || !std::holds_alternative<wire::ErrorPacket>(*p))
    return {998, "not an ERROR"};
  return std::get<wire::ErrorPacket>(*p);
}

TEST_F(LabServeTftp, TraversalIsRefusedWithErrorPackets) {
  LAB_REQUIRE_PROGRAM("tftp");
  const auto port = static_cast<std::uint16_t>(std::stoi(port_));
  std::vector<std::string> refused = {"../secret.txt", "boot/../../secret.txt", "escape", "zero",
                                      "boot"};
  if (is_root()) {
    // A device node inside the root itself, not only a symlink to one.
    ASSERT_EQ(::mknod((root_ / "null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
    refused.emplace_back("null");
  }
  for (const auto& name : refused) {
    const auto e = refusal(port, name);
    EXPECT_EQ(e.code, 2) << name << ": " << e.message;
    EXPECT_EQ(e.message, "access violation") << name;
  }
  // An absolute path names a file under the root (as tftp-hpa -s does), never the host's.
  EXPECT_EQ(refusal(port, "/etc/passwd").code, 1);
  EXPECT_EQ(refusal(port, dir_.path().string() + "/secret.txt").code, 1);

  // What a real client sees, and that nothing was written.
  const auto out = dir_.path() / "out.bin";
  for (const char* name : {"../secret.txt", "escape", "zero"}) {
    auto r = run({"tftp", "127.0.0.1", port_, "-m", "binary", "-c", "get", name, out.string()});
    EXPECT_NE(r.output.find("Error code 2: access violation"), std::string::npos)
        << name << ": " << r.output;
    EXPECT_FALSE(std::filesystem::exists(out) && std::filesystem::file_size(out) > 0) << name;
  }
}

std::vector<std::uint8_t> bytes_of(std::string_view s) {
  return {s.begin(), s.end()};
}

TEST_F(LabServeTftp, BadInputNeverStopsTheServer) {
  LAB_REQUIRE_PROGRAM("curl");
  const auto port = static_cast<std::uint16_t>(std::stoi(port_));
  using namespace std::string_view_literals;
  // Request-like datagrams the server answers with an ERROR of a given code.
  const std::vector<std::pair<std::vector<std::uint8_t>, std::uint16_t>> answered = {
      {bytes_of("\0\1one.bin"sv), 4},                           // no NUL
      {bytes_of("\0\1one.bin\0octet"sv), 4},                    // mode without NUL
      {bytes_of("\0\1\0octet\0"sv), 4},                         // empty filename
      {bytes_of("\0\1one.bin\0binary\0"sv), 4},                 // unknown mode
      {bytes_of("\0\x2a\1\2"sv), 4},                            // unknown opcode
      {bytes_of("\0\1one.bin\0octet\0windowsize\0-4\0"sv), 8},  // negative
      {bytes_of("\0\1one.bin\0octet\0blksize\0"
                "123456789012\0"sv),
       8},  // absurd
      {bytes_of("\0\1one.bin\0octet\0tsize\0"
                "99999999999999999999\0"sv),
       8},
      {bytes_of("\0\1one.bin\0octet\0blksize\0"
                "512\0BLKSIZE\0"
                "1024\0"sv),
       8},                                      // twice
      {bytes_of("\0\2new.bin\0octet\0"sv), 2},  // write request
      {bytes_of("\1"sv), 4},                    // no opcode
  };
  RawClient c;
  for (std::size_t i = 0; i < answered.size(); ++i) {
    c.send(port, answered[i].first);
    auto d = c.receive(3s);
    ASSERT_TRUE(d) << "no answer to datagram #" << i;
    auto p = wire::parse(d->bytes);
    ASSERT_TRUE(p && std::holds_alternative<wire::ErrorPacket>(*p)) << "datagram #" << i;
    EXPECT_EQ(std::get<wire::ErrorPacket>(*p).code, answered[i].second)
        << "datagram #" << i << ": " << std::get<wire::ErrorPacket>(*p).message;
  }
  // DATA, ACK and ERROR on port 69 belong to no transfer: dropped without an answer, since
  // answering could start a loop between two servers.
  for (const auto& stray :
       {bytes_of("\0\4\0\1"sv), bytes_of("\0\3\0\1data"sv), bytes_of("\0\5\0\0oops\0"sv)}) {
    c.send(port, stray);
  }
  EXPECT_FALSE(c.receive(300ms)) << "a stray datagram was answered";

  // Absurd but well-formed options are clamped or left out of the OACK, not obeyed.
  c.send(port, wire::serialize(wire::Request{
                   wire::Opcode::rrq,
                   "one.bin",
                   wire::Mode::octet,
                   {{"blksize", "4294967295"}, {"windowsize", "0"}, {"timeout", "100000"}}}));
  auto oack = c.receive(3s);
  ASSERT_TRUE(oack);
  auto p = wire::parse(oack->bytes);
  ASSERT_TRUE(p && std::holds_alternative<wire::OAck>(*p));
  EXPECT_EQ(std::get<wire::OAck>(*p).options, (std::vector<wire::Option>{{"blksize", "1468"}}));
  c.send(oack->from_port, wire::serialize(wire::ErrorPacket{0, "done"}));

  // Every input of the fuzz corpus, and a datagram as large as UDP allows.
  std::size_t sent = 0;
  for (const auto& entry : std::filesystem::directory_iterator(LAB_TFTP_FUZZ_CORPUS)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                    std::istreambuf_iterator<char>());
    if (bytes.empty())
      continue;       // a zero-length datagram carries nothing to parse
    RawClient fresh;  // a transfer started by a valid request must not swallow the next input
    fresh.send(port, bytes);
    ++sent;
  }
  EXPECT_GT(sent, 30U);
  std::vector<std::uint8_t> huge(65000, 0xff);
  huge[0] = 0;
  huge[1] = 1;
  c.send(port, huge);

  // Still serving, to a real client, the right bytes.
  const auto out = dir_.path() / "after.bin";
  auto r = run({"curl", "-sS", "--tftp-blksize", "1468", "-o", out.string(), url("one.bin")});
  ASSERT_EQ(r.exit_code, 0) << r.output << serve_->output();
  EXPECT_EQ(sha256_of(out), sha256_of(root_ / "one.bin"));
  EXPECT_TRUE(serve_->running());
}

// One host asks for the file 128 times, from 128 ports, and never acknowledges anything: as
// many transfers as the server runs at once by default. Another host still gets its download at
// once, because one address may hold only a few transfers.
TEST_F(LabServeTftp, OneHostWithManyUnacknowledgedRequestsBlocksNoOtherHost) {
  LAB_REQUIRE_PROGRAM("curl");
  const auto port = static_cast<std::uint16_t>(std::stoi(port_));
  constexpr int kRequests = 128;
  std::vector<std::unique_ptr<RawClient>> attacker;
  for (int i = 0; i < kRequests; ++i) {
    attacker.push_back(std::make_unique<RawClient>("127.0.0.2"));
    attacker.back()->send(
        port, wire::serialize(wire::Request{wire::Opcode::rrq, "one.bin", wire::Mode::octet, {}}));
  }
  // Every request is answered: DATA 1 (a transfer now waits for an ACK that never comes) or an
  // ERROR.
  // The transfers the attacker holds: its socket and the server's TID.
  std::vector<std::pair<RawClient*, std::uint16_t>> held;
  int refused = 0;
  std::string refusal;
  for (auto& c : attacker) {
    auto d = c->receive(5s);
    ASSERT_TRUE(d) << "a request got no answer\n" << serve_->output();
    auto p = wire::parse(d->bytes);
    ASSERT_TRUE(p);
    if (std::holds_alternative<wire::Data>(*p)) {
      held.emplace_back(c.get(), d->from_port);
    } else {
      ASSERT_TRUE(std::holds_alternative<wire::ErrorPacket>(*p));
      refusal = std::get<wire::ErrorPacket>(*p).message;
      ++refused;
    }
  }

  // The other host (curl sends from 127.0.0.1) downloads while those transfers hang.
  const auto out = dir_.path() / "other.bin";
  const auto started = std::chrono::steady_clock::now();
  auto r = run({"curl", "-sS", "--max-time", "20", "--tftp-blksize", "1468", "-o", out.string(),
                url("one.bin")},
               30s);
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(r.exit_code, 0) << r.output << "\n" << serve_->output();
  EXPECT_EQ(sha256_of(out), sha256_of(root_ / "one.bin"));
  EXPECT_LT(took, 10s);

  // The attacker holds only its share; the rest were told why.
  EXPECT_EQ(held.size(), 8U);
  EXPECT_EQ(refused, kRequests - 8);
  EXPECT_NE(refusal.find("too many transfers from this address"), std::string::npos) << refusal;
  EXPECT_NE(serve_->output().find("too many transfers from this address"), std::string::npos);

  // Abort the held transfers, so that the clean stop in TearDown does not wait for them.
  for (const auto& [client, tid] : held)
    client->send(tid, wire::serialize(wire::ErrorPacket{0, "done"}));
}

TEST(TftpServe, DisabledByDefaultAndBadConfigIsAStartError) {
  TempDir dir;
  auto show = run({lab_binary(), "serve", "--data-dir", dir.path(), "--show-config"});
  EXPECT_NE(show.output.find("tftp.enabled = false"), std::string::npos) << show.output;
  auto bad = run(
      {lab_binary(), "serve", "--data-dir", dir.path() / "d", "--set", "coordinator.enabled=false",
       "--set", "tftp.enabled=true", "--set", "tftp.listen=nowhere"},
      10s);
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("tftp.listen"), std::string::npos) << bad.output;
  auto missing_root = run({lab_binary(), "serve", "--data-dir", dir.path() / "d2", "--set",
                           "coordinator.enabled=false", "--set", "tftp.enabled=true", "--set",
                           "tftp.listen=127.0.0.1:0", "--set", "tftp.root=/nonexistent/tftp"},
                          10s);
  EXPECT_EQ(missing_root.exit_code, 1) << missing_root.output;
  EXPECT_NE(missing_root.output.find("/nonexistent/tftp"), std::string::npos)
      << missing_root.output;
}

}  // namespace
