// Attacks on enrolment through the real servers: `lab serve` (coordinator and HTTP boot on
// loopback) and real `labd` agents with their own swtpm. A stranger who can reach the boot
// port must not be able to take over an enrolled node: not with a MAC it reports, not with
// the boot token of that MAC, and an armed reinstall must not cost the old agent its cache.
#include "agent/facts/facts.hpp"
#include "tests/integration/agent/boot_appliance.hpp"
#include "tests/integration/agent/labd_fixture.hpp"
#include "tests/support/text.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

namespace {

using namespace lab::tests;
using lab::tests::httpboot::curl;
namespace json = boost::json;

// The join string an iPXE script puts on the kernel command line; empty when none.
std::string join_string_in(const std::string& script) {
  const auto at = script.find("lab.join=");
  if (at == std::string::npos)
    return {};
  const auto begin = at + 9;
  return script.substr(begin, script.find_first_of(" \n", begin) - begin);
}

class EnrolmentAttack : public ::testing::Test {
 protected:
  void SetUp() override {
    LAB_REQUIRE_PROGRAM("swtpm");
    LAB_REQUIRE_PROGRAM("curl");
    // Every labd on this host reports this host's NICs: the victim's MAC is in the
    // attacker's facts too, as it was in the reproduction.
    for (const auto& nic : lab::agent::facts::collect("/").nics) {
      if (!nic.mac.empty() && nic.mac != "00:00:00:00:00:00") {
        mac_ = nic.mac;
        break;
      }
    }
    if (mac_.empty())
      GTEST_SKIP() << "this host has no NIC with a MAC to report";
  }

  // The victim: joined with an operator's token, labelled role=db, entitled to a secret,
  // running.
  void enrol_victim() {
    auto token = app_.lab_json({"token", "create", "--label", "role=db"});
    ASSERT_TRUE(token.is_object());
    auto joined = victim_.labd({"join", std::string(token.at("join_string").as_string())});
    ASSERT_EQ(joined.exit_code, 0) << joined.output;
    victim_id_ = json::parse(victim_.labd({"status", "--output", "json"}).output)
                     .as_object()
                     .at("node_id")
                     .as_string();
    victim_agent_.emplace(victim_.start());
    ASSERT_TRUE(victim_.wait_ready()) << victim_agent_->output();
    const auto value = victim_.dir().write("value", "hunter2-db");
    auto set = app_.lab({"secret", "set", "db-password", "--from-file", value.string(),
                         "--entitlement", "role=db"});
    ASSERT_EQ(set.exit_code, 0) << set.output;
    ASSERT_TRUE(wait_until(
        [&] {
          return victim_.labd({"secret", "get", "db-password"}).output == "hunter2-db";
        },
        30s))
        << victim_agent_->output();
  }

  json::object node(const std::string& id) const {
    auto r = app_.lab_json({"node", "show", id});
    return r.is_object() ? r.as_object() : json::object();
  }

  std::string mac_;
  BootAppliance app_;
  LabdNode victim_;
  std::string victim_id_;
  std::optional<ChildProcess> victim_agent_;
};

TEST_F(EnrolmentAttack, ABootTokenAndTheVictimsMacDoNotMakeAStrangerTheVictim) {
  enrol_victim();
  // No DHCP of this appliance leased to the MAC and no operator registered it: the boot port
  // gives a stranger no token for it at all.
  auto first = curl(app_.http_url() + "/boot/" + mac_ + ".ipxe");
  EXPECT_EQ(first.status, 403) << first.body;
  EXPECT_TRUE(join_string_in(first.body).empty()) << first.body;

  // Now the machine is registered for network boot at the stranger's own address, and the MAC
  // is the victim's by the operator's word: the script is served, with a token for the MAC.
  app_.register_machine(mac_);
  auto args = app_.operator_auth();
  args.insert(args.end(), {"-X", "PATCH", "-H", "Content-Type: application/json", "--data",
                           R"({"add":[")" + mac_ + R"("]})"});
  ASSERT_EQ(curl(app_.api_url() + "/v1/nodes/" + victim_id_ + "/macs", args).status, 200);
  auto script = curl(app_.http_url() + "/boot/" + mac_ + ".ipxe");
  ASSERT_EQ(script.status, 200) << script.body;
  const std::string join = join_string_in(script.body);
  ASSERT_FALSE(join.empty()) << script.body;

  // The stranger joins with it from another machine that reports the victim's MAC.
  LabdNode stranger;
  auto joined = stranger.labd({"join", join});
  ASSERT_EQ(joined.exit_code, 0) << joined.output;
  EXPECT_FALSE(contains(joined.output, victim_id_)) << joined.output;
  auto stranger_status = json::parse(stranger.labd({"status", "--output", "json"}).output);
  const std::string stranger_id(stranger_status.as_object().at("node_id").as_string());
  EXPECT_NE(stranger_id, victim_id_);
  EXPECT_EQ(node(stranger_id).at("state").as_string(), "discovered");
  EXPECT_TRUE(node(stranger_id).at("labels").as_object().empty());
  EXPECT_TRUE(node(stranger_id).at("macs").as_array().empty());
  // It gets nothing of the victim's.
  auto stranger_agent = stranger.start();
  ASSERT_TRUE(stranger.wait_ready()) << stranger_agent.output();
  std::this_thread::sleep_for(2s);  // a sync round; nothing may arrive in it
  EXPECT_NE(stranger.labd({"secret", "get", "db-password"}).exit_code, 0);

  // The victim is untouched: same node, its MAC, labels and certificate, and its agent keeps
  // syncing (a new label reaches it).
  auto v = node(victim_id_);
  EXPECT_NE(v.at("state").as_string(), "revoked");
  EXPECT_EQ(v.at("labels").as_object().at("role").as_string(), "db");
  ASSERT_EQ(v.at("macs").as_array().size(), 1U);
  EXPECT_EQ(v.at("macs").as_array()[0].as_string(), mac_);
  ASSERT_EQ(app_.lab({"node", "label", victim_id_, "after=attack"}).exit_code, 0);
  EXPECT_TRUE(wait_until(
      [&] { return contains(read_file(victim_.run_dir() / "labels.json"), "\"after\""); }, 30s))
      << victim_agent_->output();
  EXPECT_EQ(victim_.labd({"secret", "get", "db-password"}).output, "hunter2-db");
  EXPECT_FALSE(contains(victim_agent_->output(), "403")) << victim_agent_->output();

  // And the claim on the victim's MAC is on record.
  auto audit = app_.lab({"audit", "list", "--output", "json", "--limit", "1000"});
  EXPECT_TRUE(contains(audit.output, "mac.claim_refused")) << audit.output;
  EXPECT_EQ(stranger_agent.stop(), 0);
  EXPECT_EQ(victim_agent_->stop(), 0);
}

TEST_F(EnrolmentAttack, AnArmedReinstallAnswersTheOldAgentsPollWith403AndItKeepsItsCache) {
  enrol_victim();
  app_.register_machine(mac_);
  auto args = app_.operator_auth();
  args.insert(args.end(), {"-X", "PATCH", "-H", "Content-Type: application/json", "--data",
                           R"({"add":[")" + mac_ + R"("]})"});
  ASSERT_EQ(curl(app_.api_url() + "/v1/nodes/" + victim_id_ + "/macs", args).status, 200);
  auto arm = app_.operator_auth();
  arm.insert(arm.end(), {"-X", "POST"});
  auto armed = curl(app_.api_url() + "/v1/nodes/" + victim_id_ + "/reinstall", arm);
  ASSERT_EQ(armed.status, 200) << armed.body;

  const std::size_t before = victim_agent_->output().size();
  // The machine's next network boot becomes the node again, with new keys.
  const std::string join = join_string_in(curl(app_.http_url() + "/boot/" + mac_ + ".ipxe").body);
  ASSERT_FALSE(join.empty());
  LabdNode reinstalled;
  auto joined = reinstalled.labd({"join", join});
  ASSERT_EQ(joined.exit_code, 0) << joined.output;
  EXPECT_TRUE(contains(joined.output, victim_id_)) << joined.output;
  auto agent = reinstalled.start();
  ASSERT_TRUE(reinstalled.wait_ready()) << agent.output();
  EXPECT_TRUE(wait_until(
      [&] {
        return reinstalled.labd({"secret", "get", "db-password"}).output == "hunter2-db";
      },
      30s))
      << agent.output();

  // The old agent's parked poll was answered 403, never with a bundle sealed to the new keys,
  // and it still serves its good cached copy.
  EXPECT_TRUE(
      wait_until([&] { return contains(victim_agent_->output().substr(before), "403"); }, 30s))
      << victim_agent_->output();
  EXPECT_FALSE(contains(victim_agent_->output().substr(before), "applied bundle"))
      << victim_agent_->output();
  EXPECT_EQ(victim_.labd({"secret", "get", "db-password"}).output, "hunter2-db");
  EXPECT_EQ(agent.stop(), 0);
  EXPECT_EQ(victim_agent_->stop(), 0);
}

}  // namespace
