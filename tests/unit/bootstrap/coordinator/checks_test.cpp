// Health checks on the coordinator: definitions reach the bundles of the nodes their selector
// matches and follow label changes, survive a restart, and what agents report becomes the
// node's checks and pillars, within bounds.
#include "shared/envelope/envelope.hpp"
#include "tests/unit/bootstrap/coordinator/fixture.hpp"

namespace lab::bootstrap::coordinator::testing {
namespace {

proto::Bundle payload(Coordinator& c, const AgentIdentity& agent) {
  const auto sb = c.bundle(agent).value();
  auto key =
      cr::Ed25519PublicKey::from_raw(cr::base64url_decode(c.bundle_public_key()).value()).value();
  auto env = shared::envelope::open(cr::as_bytes(*sb.envelope), key, proto::kBundleKind).value();
  return proto::parse_bundle(cr::as_chars(env.payload)).value();
}

std::vector<std::string> check_names(const proto::Bundle& b) {
  std::vector<std::string> out;
  for (const auto& c : b.checks)
    out.push_back(c.name);
  return out;
}

CheckInfo http_check(const std::string& name, const std::string& selector) {
  CheckInfo c;
  c.check.name = name;
  c.check.kind = "http";
  c.check.url = "http://127.0.0.1/healthz";
  c.check.interval_seconds = 10;
  c.selector = selector;
  return c;
}

TEST_F(CoordinatorTest, ChecksReachTheNodesTheirSelectorMatchesAndFollowLabels) {
  auto web = join("web1", {{"role", "web"}});
  auto db = join("db1", {{"role", "db"}});
  ASSERT_TRUE(c().set_check(http_check("nginx", "role=web"), operator_));
  CheckInfo disk;
  disk.check.name = "disk";
  disk.check.command = {"df", "-h", "/"};
  disk.selector = "role in (web,db)";
  ASSERT_TRUE(c().set_check(disk, operator_));

  EXPECT_EQ(check_names(payload(c(), web.identity())), (std::vector<std::string>{"disk", "nginx"}));
  EXPECT_EQ(check_names(payload(c(), db.identity())), (std::vector<std::string>{"disk"}));
  const auto nginx = payload(c(), web.identity()).checks[1];
  EXPECT_EQ(nginx.url, "http://127.0.0.1/healthz");
  EXPECT_EQ(nginx.rise, 2);
  EXPECT_EQ(nginx.fall, 3);

  ASSERT_TRUE(c().label_node("db1", {{"role", "web"}}, {}, operator_));
  EXPECT_EQ(check_names(payload(c(), db.identity())), (std::vector<std::string>{"disk", "nginx"}));

  // Setting the same definition again changes nothing; a new one moves the revision.
  const auto rev = c().revision();
  ASSERT_TRUE(c().set_check(http_check("nginx", "role=web"), operator_));
  EXPECT_EQ(c().revision(), rev);
  ASSERT_TRUE(c().delete_check("nginx", operator_));
  EXPECT_GT(c().revision(), rev);
  EXPECT_EQ(check_names(payload(c(), web.identity())), (std::vector<std::string>{"disk"}));
  EXPECT_EQ(c().delete_check("nginx", operator_).error(), CoordinatorError::not_found);

  reopen();
  auto kept = c().list_checks().value();
  ASSERT_EQ(kept.size(), 1U);
  EXPECT_EQ(kept[0].check.command, (std::vector<std::string>{"df", "-h", "/"}));
  EXPECT_EQ(kept[0].selector, "role in (db,web)");
  EXPECT_EQ(check_names(payload(c(), web.identity())), (std::vector<std::string>{"disk"}));
}

TEST_F(CoordinatorTest, CheckDefinitionsAreBoundedAndNamedWhenRefused) {
  auto refused = [&](const CheckInfo& ci) {
    auto r = c().set_check(ci, operator_);
    EXPECT_FALSE(r);
    return r ? std::string() : r.error().detail();
  };
  CheckInfo root;
  root.check.name = "whoami";
  root.check.command = {"id"};
  root.check.user = "root";
  root.selector = "role=web";
  EXPECT_NE(refused(root).find("never run as root"), std::string::npos);
  auto ftp = http_check("ftp", "role=web");
  ftp.check.url = "ftp://example/";
  EXPECT_NE(refused(ftp).find("url"), std::string::npos);
  auto slow = http_check("slow", "role=web");
  slow.check.timeout_seconds = 20;  // past the 10 s interval
  EXPECT_NE(refused(slow).find("timeout_seconds"), std::string::npos);
  auto bad_selector = http_check("sel", "role in (web");
  EXPECT_NE(refused(bad_selector).find("column"), std::string::npos);
  auto bad_name = http_check("no/slash", "role=web");
  EXPECT_FALSE(refused(bad_name).empty());
  for (int i = 0; i < 64; ++i)
    ASSERT_TRUE(c().set_check(http_check("c" + std::to_string(i), "role=web"), operator_));
  EXPECT_NE(refused(http_check("c64", "role=web")).find("64 checks"), std::string::npos);
  EXPECT_TRUE(c().set_check(http_check("c0", "role=db"), operator_)) << "replacing stays allowed";
}

TEST_F(CoordinatorTest, ReportedCheckResultsAndRunSummaryBecomeThePillars) {
  auto web = join("web1", {{"role", "web"}});
  auto node = c().get_node("web1").value();
  EXPECT_EQ(node.pillars.health, "none");
  EXPECT_EQ(node.pillars.config, "none");
  EXPECT_EQ(node.pillars.sync, "unknown");  // no poll yet
  EXPECT_EQ(node.pillars.identity, "ok");

  boost::json::array checks{boost::json::object{{"name", "nginx"},
                                                {"status", "failing"},
                                                {"since", 100},
                                                {"reason", "HTTP 503"},
                                                {"output", "busy"}},
                            boost::json::object{{"name", "disk"}, {"status", "passing"}}};
  boost::json::object facts{{"key_protection", "file"},
                            {"checks", checks},
                            {"config_run", boost::json::object{{"last_run", 90}, {"failures", 2}}}};
  ASSERT_TRUE(c().report(web.identity(), "ready", facts));
  node = c().get_node("web1").value();
  EXPECT_EQ(node.pillars.health, "failing");
  EXPECT_EQ(node.pillars.config, "failed");
  EXPECT_EQ(node.pillars.identity, "degraded");
  ASSERT_EQ(node.checks.size(), 2U);
  EXPECT_EQ(node.checks[0].reason, "HTTP 503");
  EXPECT_FALSE(node.facts.contains("checks")) << "kept apart from the facts";

  // A report without checks keeps the last ones; kept across a restart.
  ASSERT_TRUE(c().report(web.identity(), "ready", boost::json::object{}));
  reopen();
  node = c().get_node("web1").value();
  EXPECT_EQ(node.checks.size(), 2U);
  EXPECT_EQ(node.pillars.config, "failed");

  checks[0].as_object()["status"] = "passing";
  ASSERT_TRUE(c().report(web.identity(), "ready", {{"checks", checks}}));
  EXPECT_EQ(c().get_node("web1").value().pillars.health, "passing");

  // The certificate's end draws near: identity says so.
  clock_.advance(std::chrono::hours(24 * 7) - std::chrono::hours(2));
  EXPECT_EQ(c().get_node("web1").value().pillars.identity, "expiring");
}

TEST_F(CoordinatorTest, ReportedCheckResultsAreBounded) {
  auto web = join("web1", {{"role", "web"}});
  auto refused = [&](const boost::json::object& facts) {
    auto r = c().report(web.identity(), "ready", facts);
    EXPECT_FALSE(r);
    return r ? CoordinatorError{} : static_cast<CoordinatorError>(r.error().code().value());
  };
  boost::json::array many;
  for (int i = 0; i < 65; ++i)
    many.push_back(boost::json::object{{"name", "c" + std::to_string(i)}, {"status", "passing"}});
  EXPECT_EQ(refused({{"checks", many}}), CoordinatorError::invalid_argument);
  boost::json::array big{boost::json::object{
      {"name", "x"}, {"status", "failing"}, {"output", std::string(5000, 'y')}}};
  EXPECT_EQ(refused({{"checks", big}}), CoordinatorError::invalid_argument);
  boost::json::array odd{boost::json::object{{"name", "x"}, {"status", "sideways"}}};
  EXPECT_EQ(refused({{"checks", odd}}), CoordinatorError::invalid_argument);
  EXPECT_EQ(refused({{"config_run", std::string(5000, 'z')}}), CoordinatorError::invalid_argument);
  EXPECT_EQ(refused({{"config_run", boost::json::object{{"x", std::string(5000, 'z')}}}}),
            CoordinatorError::invalid_argument);
  EXPECT_TRUE(c().get_node("web1").value().checks.empty()) << "nothing of a refused report";
}

}  // namespace
}  // namespace lab::bootstrap::coordinator::testing
