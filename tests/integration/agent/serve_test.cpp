// labd against a real `lab serve` on loopback, driven by the real `lab` CLI, each node with
// its own swtpm: join failures as the coordinator reports them, labels and secrets reaching
// entitled nodes only, offline serving while the coordinator is down, and catch-up after it
// restarts.
#include "agent/daemon/node.hpp"
#include "shared/json/json.hpp"
#include "shared/protocol/protocol.hpp"
#include "tests/integration/agent/appliance.hpp"
#include "tests/integration/agent/labd_fixture.hpp"
#include "tests/support/text.hpp"

#include <gtest/gtest.h>

namespace {

using namespace lab::tests;
namespace daemon = lab::agent::daemon;

boost::json::object json_of(const std::string& text) {
  auto o = lab::shared::json::parse_object(text);
  EXPECT_TRUE(o) << text;
  return o ? *o : boost::json::object{};
}

std::string node_id(const LabdNode& n) {
  auto o = json_of(n.labd({"status", "--output", "json"}).output);
  return o.contains("node_id") ? std::string(o["node_id"].as_string()) : std::string();
}

class LabdServe : public ::testing::Test {
 protected:
  void SetUp() override { LAB_REQUIRE_PROGRAM("swtpm"); }
  LabServe serve_;
};

TEST_F(LabdServe, JoinFailuresAsTheCoordinatorReportsThem) {
  LabdNode node;
  const auto used = serve_.token();
  {
    LabdNode other;
    auto r = other.labd({"join", used});
    ASSERT_EQ(r.exit_code, 0) << r.output << serve_.output();
  }
  auto again = node.labd({"join", used});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_TRUE(contains(again.output, "invalid token")) << again.output;
  EXPECT_TRUE(contains(again.output, "hint: the token is invalid, already used or expired"));

  const auto expiring = serve_.token({}, "1s");
  std::this_thread::sleep_for(2100ms);
  auto expired = node.labd({"join", expiring});
  EXPECT_EQ(expired.exit_code, 1);
  EXPECT_TRUE(contains(expired.output, "invalid token")) << expired.output;

  auto js = lab::shared::protocol::parse_join_string(serve_.token()).value();
  auto wrong = js;
  wrong.ca_pin = "sha256:" + std::string(43, 'A');
  auto pinned = node.labd({"join", lab::shared::protocol::format_join_string(wrong)});
  EXPECT_EQ(pinned.exit_code, 1);
  EXPECT_TRUE(contains(pinned.output, "does not match the pin")) << pinned.output;

  // The same token still works: the pin check happened before it was sent.
  auto ok = node.labd({"join", lab::shared::protocol::format_join_string(js)});
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  auto twice = node.labd({"join", serve_.token()});
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_TRUE(contains(twice.output, "already joined")) << twice.output;

  LabdNode late;
  const auto unreachable = serve_.token();
  serve_.stop();
  auto down = late.labd({"join", unreachable, "--timeout", "5"});
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_TRUE(contains(down.output, "cannot reach")) << down.output;
}

TEST_F(LabdServe, LabelsAndSecretsReachEntitledNodesOnly) {
  LabdNode a;
  LabdNode b;
  ASSERT_EQ(a.labd({"join", serve_.token({"fleet=a"})}).exit_code, 0);
  ASSERT_EQ(b.labd({"join", serve_.token({"fleet=b"})}).exit_code, 0);
  auto agent_a = a.start();
  auto agent_b = b.start();
  ASSERT_TRUE(a.wait_ready() && b.wait_ready());

  const std::string value = "only-for-fleet-a-5b1e0c";
  auto set = serve_.lab({"secret", "set", "a-secret", "--entitlement", "fleet=a", "-f",
                         a.dir().write("value", value).string()});
  ASSERT_EQ(set.exit_code, 0) << set.output;
  ASSERT_EQ(serve_.lab({"node", "label", node_id(a), "color=blue"}).exit_code, 0);
  ASSERT_EQ(serve_.lab({"node", "label", node_id(b), "color=red"}).exit_code, 0);

  ASSERT_TRUE(wait_until(
      [&] { return contains(read_file(a.run_dir() / "labels.json"), "\"color\":\"blue\""); }, 30s))
      << agent_a.output();
  ASSERT_TRUE(wait_until(
      [&] { return contains(read_file(b.run_dir() / "labels.json"), "\"color\":\"red\""); }, 30s))
      << agent_b.output();
  ASSERT_TRUE(wait_until(
      [&] {
        return a.labd({"secret", "get", "a-secret"}).output == value;
      },
      30s));
  EXPECT_EQ(read_file(a.run_dir() / "secrets" / "a-secret"), value);

  auto refused = b.labd({"secret", "get", "a-secret"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_FALSE(contains(refused.output, value));
  EXPECT_FALSE(std::filesystem::exists(b.run_dir() / "secrets" / "a-secret"));
  EXPECT_EQ(agent_b.stop(), 0);
  auto opened = daemon::open_node(b.settings());
  ASSERT_TRUE(opened) << opened.error().message();
  EXPECT_EQ(opened->cache->view()->secrets.count("a-secret"), 0U);
  opened->cache.reset();
  for (const auto& e : std::filesystem::recursive_directory_iterator(b.dir().path())) {
    if (e.is_regular_file()) {
      EXPECT_FALSE(contains(read_file(e.path()), value)) << e.path();
    }
  }
}

// The metrics as node_exporter's textfile collector reads them: rewritten atomically on the
// configured interval, following the node's revision, and kept when the coordinator goes.
TEST_F(LabdServe, MetricsTextfileFollowsTheNode) {
  LabdNode a;
  const auto textfile = a.dir() / "node-exporter" / "labd.prom";
  a.write_config("[metrics]\ntextfile = \"" + textfile.string() +
                 "\"\ntextfile_interval = \"1s\"\n");
  ASSERT_EQ(a.labd({"join", serve_.token({"fleet=a"})}).exit_code, 0);
  auto agent = a.start();
  ASSERT_TRUE(a.wait_ready());
  ASSERT_EQ(serve_.lab({"node", "label", node_id(a), "color=blue"}).exit_code, 0);
  std::string text;
  ASSERT_TRUE(wait_until(
      [&] {
        text = read_file(textfile);
        return contains(text, "\nlabd_sync_status{status=\"ok\"} 1\n") &&
               contains(text, "\nlabd_labels 2\n");  // fleet and color
      },
      30s))
      << text << agent.output();
  EXPECT_TRUE(contains(text, "\nlabd_coordinator_reachable 1\n")) << text;
  EXPECT_TRUE(contains(text, "labd_certificate_expiry_timestamp_seconds ")) << text;
  // No temporary file is left beside it for the collector to trip over.
  for (const auto& e : std::filesystem::directory_iterator(textfile.parent_path()))
    EXPECT_EQ(e.path().filename(), "labd.prom");
  // The local socket answers the same.
  auto scraped = run({"curl", "-s", "--unix-socket", (a.run_dir() / "labd.sock").string(),
                      "http://localhost/metrics"});
  EXPECT_TRUE(contains(scraped.output, "labd_revision ")) << scraped.output;
  EXPECT_EQ(agent.stop(), 0);
}

// The health pillar end to end: checks defined on the coordinator reach the node, labd runs
// them (as nobody, killed at their timeout), a check fails and recovers, the coordinator sees
// each change within seconds, `lab node list --where` filters on it, and labd serves the last
// states from its cache when it is stopped. The config pillar comes from the run summary.
TEST_F(LabdServe, HealthChecksFailRecoverAndReachTheCoordinator) {
  TempDir shared_dir("lab-health");
  std::filesystem::permissions(shared_dir.path(), std::filesystem::perms::owner_all |
                                                      std::filesystem::perms::group_exec |
                                                      std::filesystem::perms::others_exec);
  const auto flag = shared_dir / "flag";
  LabdNode a;
  a.write_config("[config_run]\nsummary_file = \"" + (a.dir() / "summary.yaml").string() + "\"\n");
  a.dir().write("summary.yaml",
                "---\nresources:\n  failed: 1\n  total: 40\ntime:\n  last_run: 1796600000\n"
                "changes:\n  total: 3\n");
  ASSERT_EQ(a.labd({"join", serve_.token({"role=web"})}).exit_code, 0);
  auto agent = a.start();
  ASSERT_TRUE(a.wait_ready());
  auto set =
      serve_.lab({"check", "set", "flag", "--selector", "role=web", "--command",
                  "test -e " + flag.string(), "--interval", "1s", "--rise", "1", "--fall", "1"});
  ASSERT_EQ(set.exit_code, 0) << set.output;
  set = serve_.lab({"check", "set", "hang", "--selector", "role=web", "--command", "sleep 300",
                    "--interval", "2s", "--timeout", "1s", "--fall", "1"});
  ASSERT_EQ(set.exit_code, 0) << set.output;

  auto node = [&] { return serve_.lab_out({"node", "show", node_id(a), "-o", "json"}); };
  auto check_status = [&](const boost::json::object& n, std::string_view name) {
    for (const auto& c : n.at("checks").as_array()) {
      if (c.at("name").as_string() == name)
        return std::string(c.at("status").as_string());
    }
    return std::string();
  };
  boost::json::object shown;
  ASSERT_TRUE(wait_until(
      [&] {
        shown = json_of(node());
        return check_status(shown, "flag") == "failing" && check_status(shown, "hang") == "failing";
      },
      30s))
      << shown << agent.output();
  EXPECT_EQ(shown["pillars"].at("health"), "failing");
  EXPECT_EQ(shown["pillars"].at("config"), "failed") << shown;
  EXPECT_EQ(shown["config_run"].at("changes"), 3);
  for (const auto& c : shown["checks"].as_array()) {
    if (c.at("name") == "hang") {
      EXPECT_TRUE(contains(std::string(c.at("reason").as_string()), "timeout")) << c;
    }
    if (c.at("name") == "flag") {
      EXPECT_EQ(c.at("reason"), "exit status 1");
    }
  }
  auto failing = serve_.lab({"node", "list", "--where", "health=failing"});
  EXPECT_TRUE(contains(failing.output, "failing (2/2)")) << failing.output;
  auto typo = serve_.lab({"node", "list", "--where", "helth=failing"});
  EXPECT_EQ(typo.exit_code, 2) << typo.output;
  EXPECT_TRUE(contains(typo.output, "'helth' is not a pillar")) << typo.output;

  // The flag appears: the check recovers; without the hanging check the node is healthy.
  shared_dir.write("flag", "");
  ASSERT_TRUE(wait_until([&] { return check_status(json_of(node()), "flag") == "passing"; }, 30s))
      << agent.output();
  ASSERT_EQ(serve_.lab({"check", "rm", "hang"}).exit_code, 0);
  ASSERT_TRUE(wait_until([&] { return json_of(node())["pillars"].at("health") == "passing"; }, 30s))
      << json_of(node()) << agent.output();
  auto none = lab::shared::json::parse(
      serve_.lab_out({"node", "list", "--where", "health=failing", "-o", "json"}));
  ASSERT_TRUE(none && none->is_array());
  EXPECT_TRUE(none->as_array().empty()) << "--where leaves nothing failing";
  EXPECT_TRUE(contains(serve_.lab_out({"node", "list", "--where", "health=passing,config=failed"}),
                       node_id(a)));

  // labd says the same, running and stopped (from its cache).
  auto status = json_of(a.labd({"status", "-o", "json"}).output);
  EXPECT_EQ(status["health"], "passing") << status;
  EXPECT_EQ(agent.stop(), 0);
  status = json_of(a.labd({"status", "-o", "json"}).output);
  EXPECT_EQ(status["daemon"], "stopped");
  EXPECT_EQ(status["health"], "passing") << status;
  ASSERT_EQ(status["checks"].as_array().size(), 1U) << status;
  EXPECT_EQ(status["checks"].as_array()[0].at("name"), "flag");
}

// A textfile node_exporter would skip is refused at start, naming the key.
TEST(LabdMetricsSettings, ATextfileNotEndingInPromIsRefused) {
  LabdNode a("[metrics]\ntextfile = \"/tmp/labd.txt\"\n", false);
  auto r = a.labd({"status"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "metrics.textfile")) << r.output;
}

TEST_F(LabdServe, OfflineServingAcrossRestartsThenCatchUp) {
  LabdNode node;
  ASSERT_EQ(node.labd({"join", serve_.token({"fleet=x"})}).exit_code, 0);
  auto agent = node.start();
  ASSERT_TRUE(node.wait_ready());
  ASSERT_EQ(serve_.lab({"node", "label", node_id(node), "phase=one"}).exit_code, 0);
  ASSERT_TRUE(wait_until(
      [&] { return contains(read_file(node.run_dir() / "labels.json"), "\"phase\":\"one\""); },
      30s));
  const auto revision = json_of(node.labd({"labels", "--output", "json"}).output)["revision"];

  EXPECT_EQ(serve_.stop(), 0);
  EXPECT_EQ(agent.stop(), 0);
  agent = node.start();  // restarted while the coordinator is down
  ASSERT_TRUE(node.wait_ready());
  std::this_thread::sleep_for(1100ms);
  auto labels = json_of(node.labd({"labels", "--output", "json"}).output);
  EXPECT_EQ(labels["revision"], revision);
  EXPECT_GE(labels["staleness_seconds"].as_int64(), 1);
  EXPECT_EQ(labels["labels"].as_object()["phase"], "one");
  auto status = json_of(node.labd({"status", "--output", "json"}).output);
  EXPECT_EQ(status["coordinator_reachable"], false);

  serve_.start();
  ASSERT_EQ(serve_.lab({"node", "label", node_id(node), "phase=two", "--overwrite"}).exit_code, 0);
  const auto changed = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_until(
      [&] { return contains(read_file(node.run_dir() / "labels.json"), "\"phase\":\"two\""); },
      30s))
      << agent.output();
  // Within one backoff period (cap 2 s) and one long-poll (2 s), with slack for a loaded
  // machine running sanitizer builds.
  EXPECT_LT(std::chrono::steady_clock::now() - changed, 10s);
}

}  // namespace
