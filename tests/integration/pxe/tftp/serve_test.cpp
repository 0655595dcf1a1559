// `lab serve` with the tftp component enabled, fetched from by curl: the component wiring.
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <gtest/gtest.h>

#include <csignal>

namespace {

using namespace lab::tests;

std::uint16_t free_udp_port() {
  boost::asio::io_context io;
  boost::asio::ip::udp::socket s(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return s.local_endpoint().port();
}

TEST(TftpServe, LabServeServesTheConfiguredRoot) {
  LAB_REQUIRE_PROGRAM("curl");
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "root");
  const auto file = dir.write("root/undionly.kpxe", std::string(200000, 'u') + "end");
  const std::string port = std::to_string(free_udp_port());
  auto serve = ChildProcess::start(
      {.argv = {lab_binary(), "serve", "--data-dir", dir.path() / "data", "--set",
                "tftp.enabled=true", "--set", "tftp.listen=127.0.0.1:" + port, "--set",
                "tftp.root=" + (dir.path() / "root").string()},
       .env = {},
       .netns = {},
       .log = {}});
  ASSERT_TRUE(wait_until([&] { return serve.output().find("msg=ready") != std::string::npos; }))
      << serve.output();
  EXPECT_NE(serve.output().find("component=tftp msg=listening"), std::string::npos);
  const auto out = dir.path() / "out";
  auto r = run({"curl", "-sS", "--tftp-blksize", "1468", "-o", out.string(),
                "tftp://127.0.0.1:" + port + "/undionly.kpxe"});
  ASSERT_EQ(r.exit_code, 0) << r.output << serve.output();
  EXPECT_EQ(read_file(out), read_file(file));
  auto missing = run({"curl", "-sS", "tftp://127.0.0.1:" + port + "/nothing"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_EQ(serve.stop(), 0) << serve.output();
  EXPECT_NE(serve.output().find("request refused"), std::string::npos);
}

TEST(TftpServe, DisabledByDefaultAndBadListenIsAStartError) {
  TempDir dir;
  auto show = run({lab_binary(), "serve", "--data-dir", dir.path(), "--show-config"});
  EXPECT_NE(show.output.find("tftp.enabled = false"), std::string::npos) << show.output;
  auto bad = run({lab_binary(), "serve", "--data-dir", dir.path() / "d", "--set",
                  "tftp.enabled=true", "--set", "tftp.listen=nowhere"},
                 10s);
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("tftp.listen"), std::string::npos) << bad.output;
  auto missing_root =
      run({lab_binary(), "serve", "--data-dir", dir.path() / "d2", "--set", "tftp.enabled=true",
           "--set", "tftp.listen=127.0.0.1:0", "--set", "tftp.root=/nonexistent/tftp"},
          10s);
  EXPECT_EQ(missing_root.exit_code, 1) << missing_root.output;
  EXPECT_NE(missing_root.output.find("/nonexistent/tftp"), std::string::npos)
      << missing_root.output;
}

}  // namespace
