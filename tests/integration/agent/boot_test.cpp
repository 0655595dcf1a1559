// `labd boot` against a real `lab serve` (coordinator and HTTP boot on loopback): the kernel
// command line comes from a real /boot/<mac>.ipxe script, as iPXE would boot it. Discovery and
// `lab node accept`, the auto-accept selector, a replayed boot token, bad command lines, and
// the boot flight recorder's view of all of it (`lab machine timeline MAC`).
#include "agent/facts/facts.hpp"
#include "shared/json/json.hpp"
#include "tests/integration/agent/boot_appliance.hpp"
#include "tests/integration/pxe/httpboot/curl.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/text.hpp"
#include "tests/unit/agent/swtpm.hpp"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

namespace {

using namespace lab::tests;
using lab::tests::httpboot::curl;
namespace json = boost::json;

// One network-booted machine: its data directory, a labd.toml pointing every path into it
// and naming a TPM device that does not exist (an initramfs has none), and the command line.
class BootMachine {
 public:
  explicit BootMachine(const std::string& cmdline) {
    dir_.write("cmdline", cmdline + "\n");
    dir_.write("labd.toml", fmt::format("data_dir = \"{0}/data\"\n"
                                        "socket = \"{0}/run/labd.sock\"\n"
                                        "tcti = \"device:{0}/no-tpmrm0\"\n"
                                        "[render]\n"
                                        "labels_json = \"{0}/run/labels.json\"\n"
                                        "env_file = \"{0}/run/labels.env\"\n"
                                        "secrets_dir = \"{0}/run/secrets\"\n"
                                        "facts_file = \"{0}/facts/lab.json\"\n"
                                        "[sync]\n"
                                        "wait = \"3s\"\n"
                                        "backoff_initial = \"1s\"\n"
                                        "backoff_cap = \"2s\"\n",
                                        dir_.path().string()));
  }

  [[nodiscard]] std::vector<std::string> argv() const {
    return {
        labd_binary().string(),     "--config", (dir_ / "labd.toml").string(), "boot", "--cmdline",
        (dir_ / "cmdline").string()};
  }
  [[nodiscard]] ChildProcess start() const {
    return ChildProcess::start({.argv = argv(), .env = {}, .netns = {}, .log = {}});
  }
  [[nodiscard]] CommandResult run_to_end() const { return run(argv(), 60s); }
  [[nodiscard]] const TempDir& dir() const { return dir_; }

 private:
  TempDir dir_{"labd-boot"};
};

// The console lines of `labd boot`, in order.
std::vector<std::string> boot_lines(const std::string& output) {
  std::vector<std::string> out;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("labd boot: ", 0) == 0)
      out.push_back(line);
  }
  return out;
}

bool has_event(const std::vector<std::string>& timeline, std::string_view kind,
               std::initializer_list<std::string_view> parts) {
  for (const auto& e : timeline) {
    if (e.rfind(std::string(kind) + " ", 0) != 0 && e != kind)
      continue;
    bool all = true;
    for (auto p : parts)
      all = all && contains(e, p);
    if (all)
      return true;
  }
  return false;
}

std::string join_lines(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v)
    out += s + "\n";
  return out;
}

class LabdBoot : public ::testing::Test {
 protected:
  void SetUp() override {
    LAB_REQUIRE_PROGRAM("curl");
    // The boot token is bound to the script's MAC, and the coordinator checks it against the
    // MACs labd reports: use one this machine really has.
    for (const auto& nic : lab::agent::facts::read_nics("/")) {
      if (!nic.mac.empty() && nic.mac != "00:00:00:00:00:00") {
        mac_ = nic.mac;
        break;
      }
    }
    if (mac_.empty())
      GTEST_SKIP() << "no network interface with a MAC address on this machine";
  }
  std::string mac_;
};

TEST_F(LabdBoot, DiscoveredMachineWaitsForTheOperatorThenReportsReady) {
  BootAppliance appliance;
  const std::string cmdline = appliance.cmdline(mac_);
  ASSERT_TRUE(contains(cmdline, "lab.join=lab1:")) << cmdline;
  ASSERT_TRUE(contains(cmdline, "lab.mac=" + mac_)) << cmdline;
  ASSERT_TRUE(contains(cmdline, "lab.server=" + appliance.http_url())) << cmdline;
  BootMachine machine(cmdline);
  auto labd = machine.start();

  ASSERT_TRUE(wait_until([&] { return contains(labd.output(), "labd boot: waiting"); }, 30s))
      << labd.output() << appliance.output();
  auto node = appliance.node_by_mac(mac_);
  ASSERT_TRUE(node) << appliance.lab({"node", "list"}).output;
  const std::string id((*node)["id"].as_string());
  const std::string name((*node)["name"].as_string());
  EXPECT_EQ((*node)["state"], "discovered");
  const auto facts = (*node)["facts"].as_object();
  EXPECT_GT(facts.at("memory_bytes").to_number<std::int64_t>(), 0);
  EXPECT_GT(facts.at("cpu").as_object().at("count").to_number<std::int64_t>(), 0);

  auto lines = boot_lines(labd.output());
  ASSERT_EQ(lines.size(), 4U) << labd.output();
  EXPECT_TRUE(contains(lines[0], "labd boot: no TPM")) << lines[0];
  EXPECT_TRUE(contains(lines[0], "(degraded)")) << lines[0];
  EXPECT_EQ(lines[1].rfind("labd boot: joining https://127.0.0.1:", 0), 0U) << lines[1];
  EXPECT_TRUE(lines[1].ends_with(" as " + mac_)) << lines[1];
  EXPECT_EQ(lines[2], "labd boot: joined node=" + id + " state=discovered");
  EXPECT_EQ(lines[3], "labd boot: waiting for the operator (lab node accept " + name + ")");

  // Nothing moves on its own while the operator has not decided.
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(boot_lines(labd.output()).size(), 4U) << labd.output();
  EXPECT_TRUE(labd.running());

  auto accept = appliance.lab({"node", "accept", name});
  ASSERT_EQ(accept.exit_code, 0) << accept.output;
  ASSERT_TRUE(wait_until([&] { return contains(labd.output(), "labd boot: ready"); }, 30s))
      << labd.output();
  lines = boot_lines(labd.output());
  ASSERT_EQ(lines.size(), 5U) << labd.output();
  EXPECT_EQ(lines[4], "labd boot: ready node=" + id);
  ASSERT_TRUE(wait_until(
      [&] {
        auto n = appliance.node_by_mac(mac_);
        return n && (*n)["state"] == "ready";
      },
      15s))
      << appliance.lab({"node", "list"}).output;

  // It keeps serving like `labd run`: labels rendered, the agent stays up.
  ASSERT_TRUE(
      wait_until([&] { return std::filesystem::exists(machine.dir() / "run/labels.json"); }, 15s))
      << labd.output();
  EXPECT_TRUE(labd.running()) << labd.output();

  const auto timeline = appliance.timeline(mac_);
  EXPECT_TRUE(has_event(timeline, "script-render", {"token=yes"})) << join_lines(timeline);
  EXPECT_TRUE(has_event(timeline, "agent-boot", {"stage=joining"})) << join_lines(timeline);
  EXPECT_TRUE(has_event(timeline, "agent-join", {"result=joined", "state=discovered", id}))
      << join_lines(timeline);
  EXPECT_TRUE(has_event(timeline, "agent-boot", {"stage=report", "state=ready", id}))
      << join_lines(timeline);
  EXPECT_EQ(labd.stop(), 0) << labd.output();
}

TEST_F(LabdBoot, AutoAcceptedMachineIsReadyWithoutWaiting) {
  BootAppliance appliance("auto_accept = \"!lab.example/never\"");
  BootMachine machine(appliance.cmdline(mac_));
  const auto started = std::chrono::steady_clock::now();
  auto labd = machine.start();
  ASSERT_TRUE(wait_until([&] { return contains(labd.output(), "labd boot: ready"); }, 30s))
      << labd.output() << appliance.output();
  const auto took = std::chrono::steady_clock::now() - started;
  const auto lines = boot_lines(labd.output());
  ASSERT_EQ(lines.size(), 4U) << labd.output();
  EXPECT_TRUE(contains(lines[2], " state=enrolled")) << lines[2];
  EXPECT_EQ(lines[3].rfind("labd boot: ready node=", 0), 0U) << lines[3];
  auto node = appliance.node_by_mac(mac_);
  ASSERT_TRUE(node);
  EXPECT_EQ((*node)["state"], "ready");
  EXPECT_EQ(lines[3], "labd boot: ready node=" + std::string((*node)["id"].as_string()));
  // Reported, not asserted: a sanitizer build on a shared runner is no measure of speed.
  std::cout << "labd boot, start to ready (debug build): "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms\n";
  const auto timeline = appliance.timeline(mac_);
  EXPECT_TRUE(has_event(timeline, "agent-join", {"result=joined", "state=enrolled"}))
      << join_lines(timeline);
  // Then it runs as `labd run` does: local API up, stops cleanly on SIGTERM.
  ASSERT_TRUE(wait_until([&] { return contains(labd.output(), "component=labd msg=ready"); }, 15s))
      << labd.output();
  EXPECT_EQ(labd.stop(), 0) << labd.output();
}

TEST_F(LabdBoot, ReplayedBootTokenFailsAndTheRefusalIsRecorded) {
  BootAppliance appliance("auto_accept = \"!lab.example/never\"");
  const std::string cmdline = appliance.cmdline(mac_);
  BootMachine first(cmdline);
  auto labd = first.start();
  ASSERT_TRUE(wait_until([&] { return contains(labd.output(), "labd boot: ready"); }, 30s))
      << labd.output();
  ASSERT_TRUE(wait_until([&] { return contains(labd.output(), "component=labd msg=ready"); }, 15s))
      << labd.output();
  EXPECT_EQ(labd.stop(), 0) << labd.output();

  BootMachine replay(cmdline);  // a fresh machine state, the same kernel command line
  auto r = replay.run_to_end();
  EXPECT_EQ(r.exit_code, 1) << r.output;
  const auto lines = boot_lines(r.output);
  ASSERT_FALSE(lines.empty()) << r.output;
  EXPECT_EQ(lines.back().rfind("labd boot: failed: ", 0), 0U) << r.output;
  EXPECT_TRUE(contains(lines.back(), "invalid token")) << lines.back();
  EXPECT_EQ(lines.size(), 3U) << r.output;  // degraded, joining, failed: one line each

  const auto timeline = appliance.timeline(mac_);
  EXPECT_TRUE(has_event(timeline, "agent-join", {"result=refused", "reason=token already used"}))
      << join_lines(timeline);
  EXPECT_TRUE(has_event(timeline, "agent-boot", {"stage=failed", "invalid token"}))
      << join_lines(timeline);
}

TEST_F(LabdBoot, BadCommandLinesFailWithOneLine) {
  const struct {
    std::string cmdline;
    std::string reason;
  } cases[] = {
      {"console=ttyS0 lab.mode=discovery", "no lab.join"},
      {"lab.join=lab1:AAAA lab.colour=blue lab.size=2", "lab.colour, lab.size"},
      {"lab.join=not-a-join-string", "lab.join"},
      {"lab.mode=install lab.join=x", "lab.mode=install"},
  };
  for (const auto& c : cases) {
    BootMachine machine(c.cmdline);
    auto r = machine.run_to_end();
    EXPECT_EQ(r.exit_code, 1) << c.cmdline << "\n" << r.output;
    const auto lines = boot_lines(r.output);
    ASSERT_EQ(lines.size(), 1U) << r.output;
    EXPECT_EQ(lines[0].rfind("labd boot: failed: ", 0), 0U) << lines[0];
    EXPECT_TRUE(contains(lines[0], c.reason)) << lines[0];
    EXPECT_FALSE(std::filesystem::exists(machine.dir() / "data" / "node.json"));
  }
  BootMachine missing("");
  auto r = run({labd_binary().string(), "--config", (missing.dir() / "labd.toml").string(), "boot",
                "--cmdline", (missing.dir() / "nothing-here").string()},
               30s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.output, "labd boot: failed: ")) << r.output;
}

// The progress route takes reports only from the machine itself, bounded and rate-limited.
TEST_F(LabdBoot, ProgressRouteRefusesStrangersAndFloods) {
  BootAppliance appliance;
  (void)appliance.cmdline(mac_);  // this MAC's script was fetched from 127.0.0.1
  const std::string url = appliance.http_url() + "/boot/progress";
  auto post = [&](const std::string& body, const std::string& from = "127.0.0.1") {
    return curl(url, {"-X", "POST", "-H", "Content-Type: application/json", "--interface", from,
                      "--data-binary", body});
  };
  const std::string ok = R"({"mac":")" + mac_ + R"(","stage":"failed","detail":"disk on fire"})";
  EXPECT_EQ(post(ok).status, 204);
  EXPECT_EQ(post(ok, "127.0.0.2").status, 403);  // another address than the script's
  EXPECT_EQ(post(R"({"mac":"52:54:00:00:00:99","stage":"failed"})").status, 403);
  EXPECT_EQ(post("{not json").status, 400);
  EXPECT_EQ(post(R"({"mac":")" + mac_ + R"(","stage":"rm -rf"})").status, 400);
  EXPECT_EQ(post(R"({"mac":"zz","stage":"failed"})").status, 400);
  EXPECT_EQ(post(R"({"mac":")" + mac_ + R"(","stage":"failed","detail":")" +
                 std::string(3000, 'x') + "\"}")
                .status,
            400);
  EXPECT_EQ(post(std::string(8000, ' ')).status, 413);
  // A flood from the machine itself, over one connection: past the burst (10 reports, one used
  // above) it is answered 429 and not recorded. Refills (one per 3 s) are allowed for, in case
  // the runner is slow.
  const auto flood_started = std::chrono::steady_clock::now();
  std::vector<std::string> argv{"curl"};
  for (int i = 0; i < 20; ++i) {
    if (i > 0)
      argv.emplace_back("--next");  // the same POST again, on the same connection
    argv.insert(argv.end(), {"-s", "-o", "/dev/null", "-w", "%{http_code}\n", "-H",
                             "Content-Type: application/json", "--data-binary", ok, url});
  }
  const auto flood = run(argv, 60s);
  const auto refills = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::steady_clock::now() - flood_started)
                           .count() /
                       3;
  int accepted = 0;
  int limited = 0;
  std::istringstream codes(flood.output);
  for (std::string code; std::getline(codes, code);) {
    accepted += code == "204" ? 1 : 0;
    limited += code == "429" ? 1 : 0;
  }
  EXPECT_EQ(accepted + limited, 20) << flood.output;
  EXPECT_LE(accepted, 9 + refills + 1) << flood.output;
  EXPECT_GE(accepted, 9) << flood.output;
  const auto timeline = appliance.timeline(mac_);
  EXPECT_TRUE(has_event(timeline, "agent-boot", {"stage=failed", "detail=disk on fire"}))
      << join_lines(timeline);
  int recorded = 0;
  for (const auto& e : timeline)
    recorded += e.rfind("agent-boot", 0) == 0 ? 1 : 0;
  EXPECT_EQ(recorded, 1 + accepted) << join_lines(timeline);
  EXPECT_TRUE(contains(appliance.output(), "msg=ready"));
}

}  // namespace
