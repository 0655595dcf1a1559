#include "tests/support/pki.hpp"
#include "tests/unit/bootstrap/coordinator/fixture.hpp"

namespace lab::bootstrap::coordinator::testing {
namespace {

TEST_F(CoordinatorTest, JoinIssuesACertificateForTheNodeThatIdentifyAgentMapsBack) {
  Agent a = join("web1", {{"role", "web"}});
  ASSERT_FALSE(a.joined.node_id.empty());
  EXPECT_EQ(a.joined.name, "web1");
  EXPECT_EQ(a.joined.state, "enrolled");
  EXPECT_EQ(a.joined.ca_pem, c().ca_pem());
  EXPECT_EQ(a.joined.bundle_key, c().bundle_public_key());

  auto cert = cr::Certificate::from_pem(a.joined.certificate_pem).value();
  auto ca = cr::Certificate::from_pem(c().ca_pem()).value();
  EXPECT_TRUE(cr::verify_certificate(cert, ca, clock_.now()));
  EXPECT_EQ(cert.common_name(), a.joined.node_id);
  EXPECT_EQ(cert.public_key_der(), a.tls.public_key_der());
  EXPECT_EQ(cert.not_after() - clock_.now(), std::chrono::hours(24 * 7));

  auto id = c().identify_agent(a.cert_der());
  ASSERT_TRUE(id) << id.error().message();
  EXPECT_EQ(id->node_id, a.joined.node_id);
  EXPECT_EQ(id->cert_serial, cert.serial());

  auto node = c().get_node("web1").value();
  EXPECT_EQ(node.id, a.joined.node_id);
  EXPECT_EQ(node.labels.at("role"), "web");
  EXPECT_EQ(node.cert_serial, cert.serial());
  EXPECT_EQ(c().get_node(a.joined.node_id).value().name, "web1");
}

TEST_F(CoordinatorTest, RevokedNodeAndForeignCertificatesAreRefused) {
  Agent a = join("web1");
  ASSERT_TRUE(c().revoke_node("web1", operator_));
  auto id = c().identify_agent(a.cert_der());
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error(), CoordinatorError::node_revoked);
  EXPECT_EQ(c().get_node("web1").value().state, "revoked");
  EXPECT_EQ(c().renew(a.identity(), {cr::make_csr(a.tls, "x").value(), std::nullopt}).error(),
            CoordinatorError::node_revoked);

  tests::TestPki other;
  auto key = cr::EcPrivateKey::generate().value();
  auto foreign = other.issue(key, a.joined.node_id, cr::CertUsage::client).der();
  id = c().identify_agent({reinterpret_cast<const char*>(foreign.data()), foreign.size()});
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error(), CoordinatorError::certificate_invalid);
  EXPECT_EQ(c().identify_agent("not a certificate").error(), CoordinatorError::certificate_invalid);
}

TEST_F(CoordinatorTest, ExpiredCertificateIsRefused) {
  Agent a = join("web1");
  clock_.advance(std::chrono::hours(24 * 8));
  EXPECT_EQ(c().identify_agent(a.cert_der()).error(), CoordinatorError::certificate_invalid);
}

// What the TLS listener hands over for a certificate it verified: the same checks apply to the
// identity it carries (expiry, issued serial, the node the serial belongs to, revocation).
TEST_F(CoordinatorTest, VerifiedClientCertIdentifiesOnlyTheNodeItWasIssuedTo) {
  Agent a = join("web1");
  Agent b = join("web2");
  const auto cert = cr::Certificate::from_pem(a.joined.certificate_pem).value();
  const VerifiedClientCert verified{cert.serial(), cert.common_name(), cert.not_after()};
  auto id = c().identify_verified_agent(verified);
  ASSERT_TRUE(id) << id.error().message();
  EXPECT_EQ(id->node_id, a.joined.node_id);
  EXPECT_EQ(id->cert_serial, cert.serial());

  auto other_node = verified;
  other_node.common_name = b.joined.node_id;  // a serial that speaks for another node
  EXPECT_EQ(c().identify_verified_agent(other_node).error(), CoordinatorError::certificate_invalid);
  auto unknown = verified;
  unknown.serial = "1234abcd";
  EXPECT_EQ(c().identify_verified_agent(unknown).error(), CoordinatorError::certificate_invalid);

  clock_.advance(std::chrono::hours(24 * 8));  // past not_after, on a connection still open
  EXPECT_EQ(c().identify_verified_agent(verified).error(), CoordinatorError::certificate_invalid);
  clock_.advance(-std::chrono::hours(24 * 8));
  ASSERT_TRUE(c().revoke_node("web1", operator_));
  EXPECT_EQ(c().identify_verified_agent(verified).error(), CoordinatorError::node_revoked);
}

TEST_F(CoordinatorTest, RenewIssuesANewCertificateForTheSameNode) {
  Agent a = join("web1");
  auto new_key = cr::EcPrivateKey::generate().value();
  auto renewed = c().renew(a.identity(), {cr::make_csr(new_key, "web1").value(), std::nullopt});
  ASSERT_TRUE(renewed) << renewed.error().message();
  auto cert = cr::Certificate::from_pem(renewed->certificate_pem).value();
  EXPECT_EQ(cert.common_name(), a.joined.node_id);
  EXPECT_EQ(cert.public_key_der(), new_key.public_key_der());
  auto der = cert.der();
  auto id = c().identify_agent({reinterpret_cast<const char*>(der.data()), der.size()});
  ASSERT_TRUE(id) << id.error().message();
  EXPECT_EQ(id->node_id, a.joined.node_id);
  EXPECT_EQ(c().get_node("web1").value().cert_serial, cert.serial());
  EXPECT_EQ(c().renew(a.identity(), {"garbage", std::nullopt}).error(),
            CoordinatorError::certificate_invalid);
}

TEST_F(CoordinatorTest, NamesStayUniqueAndBadCsrDoesNotConsumeTheToken) {
  Agent a = join("Web_1");
  Agent b = join("web-1");
  EXPECT_EQ(a.joined.name, "web-1");
  EXPECT_EQ(b.joined.name, "web-1-2");
  Agent blank = join("");
  EXPECT_EQ(blank.joined.name, "node-" + blank.joined.node_id.substr(0, 8));

  const std::string t = token();
  Agent d;
  auto request = d.request(t, "d");
  request.csr_pem =
      "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
  auto r = c().join(request, {"agent", "10.0.0.5"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), CoordinatorError::certificate_invalid);
  EXPECT_TRUE(c().join(d.request(t, "d"), {"agent", "10.0.0.5"}));
}

TEST_F(CoordinatorTest, BootTokenJoinIsDiscoveredThenAcceptedAndFoundByMac) {
  auto boot = c().mint_boot_token("52:54:00:12:34:56", "10.0.0.50", std::chrono::seconds(600));
  ASSERT_TRUE(boot) << boot.error().message();
  EXPECT_EQ(boot->expires_at, clock_.now() + std::chrono::seconds(600));
  EXPECT_TRUE(proto::parse_join_string(boot->join_string));
  EXPECT_FALSE(c().find_by_mac("52:54:00:12:34:56"));

  Agent a;
  auto r = c().join(a.request(boot->token, "pxe1", {"52:54:00:12:34:56"}), {"agent", "10.0.0.50"});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->state, "discovered");
  auto m = c().find_by_mac("52:54:00:12:34:56");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->node_id, r->node_id);
  EXPECT_EQ(m->state, "discovered");
  EXPECT_FALSE(c().find_by_mac("52:54:00:00:00:00"));

  auto accepted = c().accept_node(r->node_id, operator_);
  ASSERT_TRUE(accepted) << accepted.error().message();
  EXPECT_EQ(accepted->state, "enrolled");
  EXPECT_EQ(c().find_by_mac("52:54:00:12:34:56")->state, "enrolled");

  ASSERT_TRUE(c().label_node(r->node_id, {{"rack", "r4"}}, {}, operator_));
  EXPECT_EQ(c().find_by_mac("52:54:00:12:34:56")->labels.at("rack"), "r4");
}

TEST_F(CoordinatorTest, AutoAcceptEnrolsMatchingBootJoins) {
  auto_accept_ = "!quarantine";
  reopen();
  auto boot =
      c().mint_boot_token("52:54:00:00:00:07", "10.0.0.7", std::chrono::seconds(600)).value();
  Agent a;
  auto r = c().join(a.request(boot.token, "pxe7", {"52:54:00:00:00:07"}), {"agent", "10.0.0.7"});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->state, "enrolled");
}

TEST_F(CoordinatorTest, LabelNodeSetsRemovesAndValidates) {
  Agent a = join("web1", {{"role", "web"}, {"env", "dev"}});
  auto n = c().label_node("web1", {{"env", "prod"}, {"tier", "1"}}, {"role"}, operator_);
  ASSERT_TRUE(n) << n.error().message();
  EXPECT_EQ(n->labels, (shared::labels::LabelSet{{"env", "prod"}, {"tier", "1"}}));
  auto bad = c().label_node("web1", {{"env", "has space"}}, {}, operator_);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), CoordinatorError::invalid_argument);
  EXPECT_NE(bad.error().detail().find("env"), std::string::npos);
  EXPECT_EQ(c().label_node("nope", {}, {}, operator_).error(), CoordinatorError::not_found);
  EXPECT_EQ(c().list_nodes("env=prod").value().size(), 1U);
  EXPECT_EQ(c().list_nodes("env=dev").value().size(), 0U);
  EXPECT_EQ(c().list_nodes("env in (").error(), CoordinatorError::invalid_argument);
}

TEST_F(CoordinatorTest, ReportUpdatesStateAndFactsButClaimsNoMac) {
  Agent owner = join("owner");
  ASSERT_TRUE(c().set_node_macs("owner", {"52:54:00:AB:CD:EF"}, {}, operator_));
  Agent a = join("web1");
  boost::json::object facts{{"nics", boost::json::array{boost::json::object{
                                         {"name", "eth0"}, {"mac", "52:54:00:AB:CD:EF"}}}},
                            {"key_protection", "tpm"}};
  ASSERT_TRUE(c().report(a.identity(), "ready", facts));
  auto n = c().get_node("web1").value();
  EXPECT_EQ(n.state, "ready");
  EXPECT_EQ(n.key_protection, "tpm");
  EXPECT_TRUE(n.macs.empty());  // a report is a hint, not a claim
  EXPECT_EQ(n.facts.at("nics").as_array().size(), 1U);
  EXPECT_EQ(c().find_by_mac("52:54:00:ab:cd:ef")->node_id, owner.joined.node_id);
  EXPECT_EQ(c().report(a.identity(), "bogus", facts).error(), CoordinatorError::invalid_argument);
}

}  // namespace
}  // namespace lab::bootstrap::coordinator::testing

namespace lab::bootstrap::coordinator::testing {
namespace {

// A node is `offline` once its agent has neither polled nor had a poll parked for
// offline_after (60 s); a parked poll counts as seen now; the state it reported stays.
TEST_F(CoordinatorTest, ANodeWhoseAgentStoppedPollingIsOffline) {
  Agent a = join("web1");
  EXPECT_EQ(c().get_node("web1").value().state, "enrolled");
  clock_.advance(std::chrono::seconds(61));
  auto quiet = c().get_node("web1").value();
  EXPECT_EQ(quiet.state, "offline");
  EXPECT_EQ(quiet.reported_state, "enrolled");
  {
    auto w = c().watch(a.joined.node_id, 1'000'000, std::nullopt, [](auto) {});
    clock_.advance(std::chrono::seconds(600));
    auto parked = c().get_node("web1").value();
    EXPECT_EQ(parked.state, "enrolled") << "a parked poll is an agent seen now";
    EXPECT_TRUE(parked.polling);
    EXPECT_EQ(
        parked.last_seen,
        std::chrono::duration_cast<std::chrono::seconds>(clock_.now().time_since_epoch()).count());
  }
  clock_.advance(std::chrono::seconds(59));
  EXPECT_EQ(c().get_node("web1").value().state, "enrolled");
  clock_.advance(std::chrono::seconds(1));
  EXPECT_EQ(c().get_node("web1").value().state, "offline");
  // A revoked node stays revoked, however long it has been quiet.
  ASSERT_TRUE(c().revoke_node("web1", operator_));
  EXPECT_EQ(c().get_node("web1").value().state, "revoked");
}

// The last-seen times reach the store in a batch and survive a reopen.
TEST_F(CoordinatorTest, LastSeenIsSavedInBatchesAndSurvivesAReopen) {
  Agent a = join("web1");
  clock_.advance(std::chrono::seconds(100));
  {
    auto w = c().watch(a.joined.node_id, 1'000'000, std::nullopt, [](auto) {});
  }
  const auto seen = c().get_node("web1").value().last_seen;
  clock_.advance(std::chrono::seconds(31));
  c().maintain();
  reopen();
  EXPECT_EQ(c().get_node("web1").value().last_seen, seen);
}

// Only a revoked node can be deleted; its name is free afterwards and its certificate stays
// refused.
TEST_F(CoordinatorTest, DeleteForgetsARevokedNodeAndKeepsItsCertificateRefused) {
  Agent a = join("web1");
  ASSERT_TRUE(c().set_node_macs("web1", {"52:54:00:00:00:01"}, {}, operator_));
  ASSERT_TRUE(c().find_by_mac("52:54:00:00:00:01"));
  auto active = c().delete_node("web1", operator_);
  ASSERT_FALSE(active);
  EXPECT_EQ(active.error(), CoordinatorError::node_active);
  ASSERT_TRUE(c().revoke_node("web1", operator_));
  ASSERT_TRUE(c().delete_node("web1", operator_));
  EXPECT_EQ(c().get_node("web1").error(), CoordinatorError::not_found);
  EXPECT_FALSE(c().find_by_mac("52:54:00:00:00:01"));
  EXPECT_EQ(c().identify_agent(a.cert_der()).error(), CoordinatorError::node_revoked);
  Agent b = join("web1");
  EXPECT_EQ(c().get_node(b.joined.node_id).value().name, "web1");
  reopen();
  EXPECT_EQ(c().identify_agent(a.cert_der()).error(), CoordinatorError::node_revoked);
}

// Without overwrite a label patch may add keys and repeat values, not change them.
TEST_F(CoordinatorTest, ALabelValueChangesOnlyWithOverwrite) {
  join("web1", {{"env", "prod"}});
  auto refused =
      c().label_node("web1", {{"env", "dev"}}, {}, operator_, Coordinator::Overwrite::no);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), CoordinatorError::label_exists);
  EXPECT_EQ(refused.error().detail(),
            "node web1 already has env=prod; changing it to env=dev needs overwrite");
  EXPECT_TRUE(c().label_node("web1", {{"env", "prod"}, {"tier", "a"}}, {}, operator_,
                             Coordinator::Overwrite::no));
  EXPECT_TRUE(c().label_node("web1", {{"env", "dev"}}, {}, operator_, Coordinator::Overwrite::yes));
  EXPECT_EQ(c().get_node("web1").value().labels.at("env"), "dev");
}

}  // namespace
}  // namespace lab::bootstrap::coordinator::testing
