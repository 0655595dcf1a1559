// The HTTP boot server in-process with a real recorder and a registry at its seam, driven by
// curl on loopback: token minting and binding (127.0.0.1 vs 127.0.0.2), profile choice by
// labels, and what the flight recorder keeps of each request.
#include "pxe/httpboot/server/server.hpp"

#include "pxe/recorder/recorder.hpp"
#include "tests/integration/pxe/httpboot/curl.hpp"
#include "tests/support/temp_dir.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <thread>

namespace {

using namespace lab;
using namespace lab::tests;
using lab::tests::httpboot::curl;
using pxe::events::Event;
using pxe::events::Kind;

// The coordinator's side of the seam: machines by MAC, and every mint it was asked for.
class FakeRegistry final : public pxe::registry::Registry {
 public:
  struct Mint {
    std::string mac;
    std::string ip;
    std::chrono::seconds ttl{};
  };

  void add(std::string mac, pxe::registry::Machine m) {
    const std::lock_guard lock(mu_);
    machines_[std::move(mac)] = std::move(m);
  }
  void fail_mints(bool fail) {
    const std::lock_guard lock(mu_);
    fail_ = fail;
  }
  std::vector<Mint> mints() {
    const std::lock_guard lock(mu_);
    return mints_;
  }

  void register_machine(std::string mac, std::string ip) {
    const std::lock_guard lock(mu_);
    registered_[std::move(mac)] = std::move(ip);
  }
  std::optional<std::string> registered_ip(std::string_view mac) override {
    const std::lock_guard lock(mu_);
    auto it = registered_.find(std::string(mac));
    if (it == registered_.end())
      return std::nullopt;
    return it->second;
  }

  std::optional<pxe::registry::Machine> find_by_mac(std::string_view mac) override {
    const std::lock_guard lock(mu_);
    auto it = machines_.find(std::string(mac));
    if (it == machines_.end())
      return std::nullopt;
    return it->second;
  }

  Result<pxe::registry::BootToken> mint_boot_token(std::string_view mac, std::string_view ip,
                                                   std::chrono::seconds ttl) override {
    const std::lock_guard lock(mu_);
    if (fail_)
      return Error(boost::system::errc::make_error_code(boost::system::errc::io_error), "store");
    mints_.push_back({std::string(mac), std::string(ip), ttl});
    const std::string n = std::to_string(mints_.size());
    return pxe::registry::BootToken{.token = "tok" + n,
                                    .join_string = "lab1.join" + n,
                                    .expires_at = std::chrono::system_clock::now() + ttl};
  }

 private:
  std::mutex mu_;
  std::map<std::string, pxe::registry::Machine> machines_;
  std::map<std::string, std::string> registered_;
  std::vector<Mint> mints_;
  bool fail_ = false;
};

// What the DHCP server has leased, at its seam.
class FakeLeases final : public pxe::registry::Leases {
 public:
  void lease(const std::string& mac, const std::string& ip) {
    const std::lock_guard lock(mu_);
    leases_[mac] = ip;
  }
  [[nodiscard]] std::optional<std::string> address_of(std::string_view mac) const override {
    const std::lock_guard lock(mu_);
    auto it = leases_.find(std::string(mac));
    if (it == leases_.end())
      return std::nullopt;
    return it->second;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string> leases_;
};

// One io thread and a blocking pool, as lab serve runs them.
class HttpBootServerTest : public ::testing::Test {
 protected:
  void SetUp() override { LAB_REQUIRE_PROGRAM("curl"); }

  void start(bool with_registry) {
    std::filesystem::create_directories(dir_ / "web");
    std::ofstream(dir_ / "web" / "vmlinuz") << "kernel-bytes";
    std::ofstream(dir_ / "web" / "initrd.img") << "initrd-bytes";
    auto profiles =
        pxe::httpboot::ProfileSet::create({{.name = "discovery",
                                            .selector = "",
                                            .kernel = "agent/vmlinuz",
                                            .initrd = "",
                                            .cmdline = "lab.mode=discovery"},
                                           {.name = "web",
                                            .selector = "role=web",
                                            .kernel = "web/vmlinuz",
                                            .initrd = "web/initrd.img",
                                            .cmdline = "console=ttyS0 lab.token={token}"}});
    ASSERT_TRUE(profiles) << profiles.error().message();
    pxe::httpboot::ServerOptions options;
    options.address = "127.0.0.1";
    options.port = 0;
    options.root = dir_.path();
    options.profiles = std::move(*profiles);
    options.token_ttl = std::chrono::seconds(300);
    options.refusals = {.burst = 20, .per_second = 0.1, .max_callers = 64};
    server_ = std::make_unique<pxe::httpboot::Server>(
        io_, pool_, std::move(options), recorder_, with_registry ? &registry_ : nullptr, &leases_);
    auto port = server_->start();
    ASSERT_TRUE(port) << port.error().message();
    base_ = "http://127.0.0.1:" + std::to_string(*port);
    thread_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    if (!server_)
      return;
    std::promise<void> stopped;
    boost::asio::post(io_, [&] { server_->stop([&] { stopped.set_value(); }); });
    EXPECT_EQ(stopped.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
    work_.reset();
    thread_.join();
    pool_.join();
  }

  // What the DHCP server does when it hands out an address: the lease, and its report.
  void dhcp_ack(const std::string& mac, const std::string& ip) {
    leases_.lease(mac, ip);
    recorder_.record(Event{std::chrono::system_clock::now(), Kind::dhcp_ack, mac, ip, {}});
  }

  std::vector<Kind> kinds(const std::string& mac) const {
    std::vector<Kind> out;
    for (const auto& e : recorder_.timeline(mac))
      out.push_back(e.kind);
    return out;
  }

  static std::string detail(const Event& e, std::string_view key) {
    for (const auto& [k, v] : e.detail) {
      if (k == key)
        return v;
    }
    return {};
  }

  TempDir dir_{"lab-httpboot-root"};
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      io_.get_executor()};
  boost::asio::thread_pool pool_{2};
  pxe::recorder::Recorder recorder_;
  FakeRegistry registry_;
  FakeLeases leases_;
  std::unique_ptr<pxe::httpboot::Server> server_;
  std::thread thread_;
  std::string base_;
};

TEST_F(HttpBootServerTest, KnownMachineGetsItsProfileWithATokenBoundToMacAndDhcpAddress) {
  registry_.add(
      "52:54:00:00:00:01",
      {.node_id = "n-1", .name = "web1", .state = "enrolled", .labels = {{"role", "web"}}});
  start(true);
  dhcp_ack("52:54:00:00:00:01", "127.0.0.1");

  auto r = curl(base_ + "/boot/52-54-00-00-00-01.ipxe");
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_NE(r.body.find("# lab boot profile web for 52:54:00:00:00:01\n"), std::string::npos);
  EXPECT_NE(r.body.find("kernel " + base_ +
                        "/boot/web/vmlinuz initrd=initrd.img console=ttyS0 lab.token=tok1 "
                        "lab.join=lab1.join1\n"),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("initrd " + base_ + "/boot/web/initrd.img\n"), std::string::npos);
  auto mints = registry_.mints();
  ASSERT_EQ(mints.size(), 1u);
  EXPECT_EQ(mints[0].mac, "52:54:00:00:00:01");
  EXPECT_EQ(mints[0].ip, "127.0.0.1");
  EXPECT_EQ(mints[0].ttl, std::chrono::seconds(300));

  // One-time: every script request mints a fresh token.
  auto again = curl(base_ + "/boot/52:54:00:00:00:01.ipxe");
  EXPECT_NE(again.body.find("lab.token=tok2 "), std::string::npos) << again.body;
}

TEST_F(HttpBootServerTest, AScriptRequestFromAnotherAddressThanDhcpGaveIsRefused) {
  start(true);
  dhcp_ack("52:54:00:00:00:02", "127.0.0.1");
  auto refused = curl(base_ + "/boot/52:54:00:00:00:02.ipxe", {"--interface", "127.0.0.2"});
  EXPECT_EQ(refused.status, 403) << refused.error;
  EXPECT_TRUE(registry_.mints().empty());  // nothing minted for the impostor
  const auto timeline = recorder_.timeline("52:54:00:00:00:02");
  ASSERT_EQ(timeline.size(), 2u);
  EXPECT_EQ(timeline[1].kind, Kind::script_refused);
  EXPECT_EQ(timeline[1].ip, "127.0.0.2");
  EXPECT_EQ(detail(timeline[1], "expected_ip"), "127.0.0.1");

  auto ok = curl(base_ + "/boot/52:54:00:00:00:02.ipxe", {"--interface", "127.0.0.1"});
  EXPECT_EQ(ok.status, 200);
  ASSERT_EQ(registry_.mints().size(), 1u);
  EXPECT_EQ(registry_.mints()[0].ip, "127.0.0.1");

  // The address moves with the next lease: the old one is refused, the new one served.
  dhcp_ack("52:54:00:00:00:02", "127.0.0.2");
  EXPECT_EQ(curl(base_ + "/boot/52:54:00:00:00:02.ipxe", {"--interface", "127.0.0.1"}).status, 403);
  EXPECT_EQ(curl(base_ + "/boot/52:54:00:00:00:02.ipxe", {"--interface", "127.0.0.2"}).status, 200);
}

TEST_F(HttpBootServerTest, WithoutALeaseOrRegistrationNoTokenIsMinted) {
  start(true);
  // Only the recorder has seen the address (its memory is bounded): not enough for a token.
  recorder_.record(Event{
      std::chrono::system_clock::now(), Kind::dhcp_ack, "52:54:00:00:00:03", "127.0.0.2", {}});
  auto r = curl(base_ + "/boot/52:54:00:00:00:03.ipxe", {"--interface", "127.0.0.2"});
  EXPECT_EQ(r.status, 403) << r.error << r.body;
  EXPECT_TRUE(registry_.mints().empty());
  const auto timeline = recorder_.timeline("52:54:00:00:00:03");
  ASSERT_FALSE(timeline.empty());
  EXPECT_EQ(timeline.back().kind, Kind::script_refused);
  EXPECT_EQ(detail(timeline.back(), "reason"), "no DHCP lease or registration for this MAC");

  // An operator's registration is as good as a lease, and binds the token to its address.
  registry_.register_machine("52:54:00:00:00:03", "127.0.0.2");
  auto ok = curl(base_ + "/boot/52:54:00:00:00:03.ipxe", {"--interface", "127.0.0.2"});
  ASSERT_EQ(ok.status, 200) << ok.error;
  EXPECT_NE(ok.body.find(" lab.join=lab1.join1\n"), std::string::npos) << ok.body;
  ASSERT_EQ(registry_.mints().size(), 1u);
  EXPECT_EQ(registry_.mints()[0].ip, "127.0.0.2");
  EXPECT_EQ(curl(base_ + "/boot/52:54:00:00:00:03.ipxe", {"--interface", "127.0.0.1"}).status, 403);
}

TEST_F(HttpBootServerTest, AnAddressWalkingThroughMacsIsSoonToldToWait) {
  start(true);
  dhcp_ack("52:54:00:00:00:07", "127.0.0.1");
  int refused = 0;
  int limited = 0;
  std::string retry_after;
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 24; ++i) {
    auto r = curl(base_ + "/boot/52:54:00:aa:00:" + fmt::format("{:02x}", i) + ".ipxe",
                  {"--interface", "127.0.0.2"});
    if (r.status == 403)
      ++refused;
    if (r.status == 429) {
      ++limited;
      retry_after = r.header("Retry-After");
    }
  }
  EXPECT_EQ(refused, 20);  // the configured burst
  EXPECT_EQ(limited, 4);
  EXPECT_FALSE(retry_after.empty());
  // Those answers came a second late each (the tarpit): one connection, one a second.
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::seconds(4));
  EXPECT_TRUE(registry_.mints().empty());
  // Another address, a real machine, is not held up by it.
  auto ok = curl(base_ + "/boot/52:54:00:00:00:07.ipxe", {"--interface", "127.0.0.1"});
  EXPECT_EQ(ok.status, 200) << ok.error;
}

TEST_F(HttpBootServerTest, AFailedMintIs500AndTheNextRequestWorks) {
  start(true);
  dhcp_ack("52:54:00:00:00:04", "127.0.0.1");
  registry_.fail_mints(true);
  auto r = curl(base_ + "/boot/52:54:00:00:00:04.ipxe");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("cannot issue a boot token"), std::string::npos) << r.body;
  registry_.fail_mints(false);
  EXPECT_EQ(curl(base_ + "/boot/52:54:00:00:00:04.ipxe").status, 200);
}

TEST_F(HttpBootServerTest, TheRecorderSeesScriptRenderAndKernelAndInitrdFetches) {
  registry_.add(
      "52:54:00:00:00:05",
      {.node_id = "n-5", .name = "web5", .state = "enrolled", .labels = {{"role", "web"}}});
  start(true);
  dhcp_ack("52:54:00:00:00:05", "127.0.0.1");
  ASSERT_EQ(curl(base_ + "/boot/boot.ipxe").status, 200);
  ASSERT_EQ(curl(base_ + "/boot/52:54:00:00:00:05.ipxe").status, 200);
  ASSERT_EQ(curl(base_ + "/boot/web/vmlinuz").body, "kernel-bytes");
  ASSERT_EQ(curl(base_ + "/boot/web/initrd.img", {"-r", "0-5"}).status, 206);

  const auto timeline = recorder_.timeline("52:54:00:00:00:05");
  ASSERT_EQ(timeline.size(), 4u);
  EXPECT_EQ(timeline[1].kind, Kind::script_render);
  EXPECT_EQ(detail(timeline[1], "profile"), "web");
  EXPECT_EQ(detail(timeline[1], "token"), "yes");
  EXPECT_EQ(detail(timeline[1], "node"), "n-5");
  EXPECT_EQ(timeline[2].kind, Kind::http_fetch);
  EXPECT_EQ(detail(timeline[2], "file"), "web/vmlinuz");
  EXPECT_EQ(detail(timeline[2], "status"), "200");
  EXPECT_EQ(detail(timeline[2], "bytes"), "12");
  EXPECT_EQ(timeline[3].kind, Kind::http_fetch);
  EXPECT_EQ(detail(timeline[3], "file"), "web/initrd.img");
  EXPECT_EQ(detail(timeline[3], "status"), "206");
  EXPECT_EQ(detail(timeline[3], "of"), "12");
}

TEST_F(HttpBootServerTest, WithoutDhcpFileFetchesAreTiedToTheMacWhoseScriptTheAddressFetched) {
  start(false);
  auto r = curl(base_ + "/boot/52:54:00:00:00:06.ipxe", {"--interface", "127.0.0.2"});
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("echo lab: no machine registry"), std::string::npos) << r.body;
  EXPECT_EQ(curl(base_ + "/boot/web/vmlinuz", {"--interface", "127.0.0.2"}).status, 200);
  EXPECT_EQ(curl(base_ + "/boot/nothing", {"--interface", "127.0.0.2"}).status, 404);
  EXPECT_EQ(kinds("52:54:00:00:00:06"),
            (std::vector<Kind>{Kind::script_render, Kind::http_fetch, Kind::http_fetch}));
  const auto timeline = recorder_.timeline("52:54:00:00:00:06");
  ASSERT_EQ(timeline.size(), 3u);
  EXPECT_EQ(detail(timeline[2], "status"), "404");
}

}  // namespace
