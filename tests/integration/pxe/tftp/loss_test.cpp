// Transfers under packet loss: server and clients inside a network namespace where nftables
// drops about one UDP datagram in twenty (netem is not available on these machines).
#include "tests/integration/pxe/tftp/harness.hpp"
#include "tests/support/netns.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

namespace {

using namespace lab::tests;
using namespace lab::tests::tftp;
using lab::pxe::events::Kind;

TEST(TftpLoss, TransfersCompleteByteIdenticalWithFivePercentLoss) {
  LAB_REQUIRE_ROOT();
  LAB_REQUIRE_PROGRAM("nft");
  LAB_REQUIRE_PROGRAM("atftp");
  LAB_REQUIRE_PROGRAM("curl");
  LAB_REQUIRE_PROGRAM("tftp");
  TempDir dir("lab-tftp-loss");
  const auto root = dir.path() / "root";
  std::filesystem::create_directories(root);
  write_pattern(root / "one.bin", 1U << 20, 11);
  write_pattern(root / "small.bin", 96U << 10, 12);

  NetNs ns("tftploss");
  // Every UDP datagram crossing the input hook (both directions on lo) is dropped at random
  // with probability 1/20.
  ns.exec(
      "nft add table inet loss && "
      "nft add chain inet loss in '{ type filter hook input priority 0; }' && "
      "nft add rule inet loss in meta l4proto udp numgen random mod 20 0 counter drop");

  lab::pxe::tftp::server::ServerConfig config;
  config.address = "127.0.0.1";
  config.port = 0;
  config.root = root;
  config.transfer.max_retries = 10;
  TestServer s(config, ns.name());
  const std::string port = std::to_string(s.port());
  auto in_ns = [&](std::vector<std::string> argv) {
    auto full = ns.prefix();
    full.insert(full.end(), argv.begin(), argv.end());
    return full;
  };

  const auto a = dir.path() / "atftp.bin";
  auto ra = run(in_ns({"atftp", "--option", "blksize 1468", "--option", "windowsize 8", "-g", "-r",
                       "one.bin", "-l", a.string(), "127.0.0.1", port}),
                120s);
  EXPECT_EQ(ra.exit_code, 0) << ra.output;
  EXPECT_TRUE(same_content(a, root / "one.bin"));

  const auto c = dir.path() / "curl.bin";
  auto rc = run(in_ns({"curl", "-sS", "--tftp-blksize", "1468", "-o", c.string(),
                       "tftp://127.0.0.1:" + port + "/small.bin"}),
                120s);
  EXPECT_EQ(rc.exit_code, 0) << rc.output;
  EXPECT_TRUE(same_content(c, root / "small.bin"));

  const auto h = dir.path() / "hpa.bin";
  auto rh =
      run(in_ns({"tftp", "127.0.0.1", port, "-m", "binary", "-c", "get", "small.bin", h.string()}),
          120s);
  EXPECT_EQ(rh.exit_code, 0) << rh.output;
  EXPECT_TRUE(same_content(h, root / "small.bin"));

  // The rule really dropped packets, so recovery was exercised.
  auto counters = run(in_ns({"nft", "list", "chain", "inet", "loss", "in"}));
  EXPECT_EQ(counters.output.find("packets 0 "), std::string::npos) << counters.output;
  for (const auto& e : s.sink().of(Kind::tftp_error))
    ADD_FAILURE() << "transfer error: " << detail(e, "file") << ": " << detail(e, "error");
}

}  // namespace
