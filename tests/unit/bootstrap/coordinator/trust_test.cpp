// Who may enrol as what: re-enrolment needs the node's key or an operator's reinstall, MACs
// belong to nodes by DHCP or an operator only, boot tokens exist only for leased MACs, expired
// certificates renew within the grace by proof, renewals revoke their predecessor once the
// agent switched, refusals are audited in bounded rows, operators are people.
#include "shared/envelope/envelope.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/unit/bootstrap/coordinator/fixture.hpp"

#include <sqlite3.h>

namespace lab::bootstrap::coordinator::testing {
namespace {

constexpr std::string_view kMac = "52:54:00:12:34:56";
Actor booting() {
  return Actor{"anonymous", "10.0.0.50"};
}

class TrustTest : public CoordinatorTest {
 protected:
  /// A machine PXE-booting from MAC kMac at 10.0.0.50 and joining with its boot token.
  Result<proto::JoinResponse> boot_join(Agent& a, const std::string& hostname = "pxe1") {
    auto boot = c().mint_boot_token(kMac, "10.0.0.50", std::chrono::seconds(600));
    EXPECT_TRUE(boot) << boot.error().message();
    auto r = c().join(a.request(boot->token, hostname, {std::string(kMac)}), booting());
    if (r)
      a.joined = *r;
    return r;
  }

  std::vector<AuditEvent> audit(std::string_view action) {
    c().maintain();
    return audit_rows(action);
  }
  std::vector<AuditEvent> audit_rows(std::string_view action) {
    std::vector<AuditEvent> out;
    for (auto& e : c().audit_events(0, 100000).value()) {
      if (e.action == action)
        out.push_back(std::move(e));
    }
    return out;
  }

  proto::Bundle bundle_of(const Agent& a) {
    auto b = c().bundle(a.identity()).value();
    auto key = cr::Ed25519PublicKey::from_raw(cr::base64url_decode(c().bundle_public_key()).value())
                   .value();
    auto env = shared::envelope::open(cr::as_bytes(*b.envelope), key, proto::kBundleKind).value();
    return proto::parse_bundle(cr::as_chars(env.payload)).value();
  }
};

TEST_F(TrustTest, ABootTokenForAnEnrolledMacMakesANewDiscoveredNodeAndLeavesTheOwnerAlone) {
  Agent victim;
  ASSERT_TRUE(boot_join(victim, "victim"));
  ASSERT_TRUE(c().accept_node("victim", operator_));
  ASSERT_TRUE(c().label_node("victim", {{"role", "db"}}, {}, operator_));
  ASSERT_TRUE(c().set_secret("db-password", "hunter2", std::string("role=db"), operator_));

  // The attacker gets the MAC's next boot token and reports the victim's MAC as its own.
  Agent attacker;
  auto r = boot_join(attacker, "victim");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_NE(r->node_id, victim.joined.node_id);
  EXPECT_EQ(r->state, "discovered");
  EXPECT_NE(r->name, "victim");

  // The victim keeps its identity, MAC, labels, certificate and secret.
  EXPECT_TRUE(c().identify_agent(victim.cert_der()));
  EXPECT_EQ(c().find_by_mac(kMac)->node_id, victim.joined.node_id);
  auto v = c().get_node("victim").value();
  EXPECT_EQ(v.labels.at("role"), "db");
  EXPECT_EQ(v.macs, std::vector<std::string>{std::string(kMac)});
  EXPECT_EQ(bundle_of(victim).secrets.size(), 1U);
  // The newcomer has nothing of it.
  auto n = c().get_node(r->node_id).value();
  EXPECT_TRUE(n.labels.empty());
  EXPECT_TRUE(n.macs.empty());
  EXPECT_TRUE(bundle_of(attacker).secrets.empty());
  // And the claim is on record.
  auto refused = audit("mac.claim_refused");
  ASSERT_EQ(refused.size(), 1U);
  EXPECT_EQ(refused[0].subject, victim.joined.node_id);
  EXPECT_EQ(refused[0].detail.at("claimed_by").as_string(), r->node_id);
}

TEST_F(TrustTest, AnArmedReinstallReenrolsTheNodeOnceOnItsNextBoot) {
  Agent first;
  ASSERT_TRUE(boot_join(first));
  ASSERT_TRUE(c().accept_node("pxe1", operator_));
  ASSERT_TRUE(c().label_node("pxe1", {{"rack", "r4"}}, {}, operator_));

  auto armed = c().reinstall_node("pxe1", operator_);
  ASSERT_TRUE(armed) << armed.error().message();
  EXPECT_TRUE(armed->reinstall_armed);

  Agent reinstalled;
  auto r = boot_join(reinstalled);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->node_id, first.joined.node_id);
  EXPECT_EQ(r->name, "pxe1");
  EXPECT_EQ(r->state, "enrolled");
  EXPECT_EQ(c().get_node("pxe1").value().labels.at("rack"), "r4");
  EXPECT_FALSE(c().get_node("pxe1").value().reinstall_armed);
  EXPECT_TRUE(c().identify_agent(reinstalled.cert_der()));
  // The old keys no longer speak for it.
  EXPECT_EQ(c().identify_agent(first.cert_der()).error(), CoordinatorError::node_revoked);
  auto joins = audit("join");
  ASSERT_FALSE(joins.empty());
  EXPECT_EQ(joins.back().detail.at("proof").as_string(), "reinstall");
  EXPECT_EQ(audit("node.reinstall").size(), 1U);

  // Exactly once: the boot after that is a new machine again.
  Agent again;
  auto next = boot_join(again);
  ASSERT_TRUE(next);
  EXPECT_NE(next->node_id, first.joined.node_id);
  EXPECT_EQ(next->state, "discovered");
}

TEST_F(TrustTest, ReinstallNeedsAMacAndANodeThatIsNotRevoked) {
  join("ssh1");
  auto r = c().reinstall_node("ssh1", operator_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), CoordinatorError::invalid_argument);
  EXPECT_NE(r.error().detail().find("lab node macs ssh1 --add"), std::string::npos);
  ASSERT_TRUE(c().set_node_macs("ssh1", {"52:54:00:00:00:aa"}, {}, operator_));
  EXPECT_TRUE(c().reinstall_node("ssh1", operator_));
  ASSERT_TRUE(c().revoke_node("ssh1", operator_));
  EXPECT_EQ(c().reinstall_node("ssh1", operator_).error(), CoordinatorError::node_revoked);
}

TEST_F(TrustTest, AKeyProofReenrolsTheSameNodeWithAFreshToken) {
  Agent old = join("web1", {{"role", "web"}});
  const std::string t = token();
  Agent fresh;
  auto req = fresh.request(t, "web1");
  req.proof = old.prove("join", proto::parse_token(t)->id, req.csr_pem);
  auto r = c().join(req, {"agent", "10.0.0.5"});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->node_id, old.joined.node_id);
  EXPECT_EQ(r->name, "web1");
  fresh.joined = *r;
  EXPECT_TRUE(c().identify_agent(fresh.cert_der()));
  EXPECT_EQ(c().identify_agent(old.cert_der()).error(), CoordinatorError::node_revoked);
  EXPECT_EQ(c().list_nodes("").value().size(), 1U);
  EXPECT_EQ(c().get_node("web1").value().labels.at("role"), "web");
}

TEST_F(TrustTest, AProofThatDoesNotVerifyIsRefusedAndTheTokenKept) {
  Agent old = join("web1");
  const std::string t = token();
  Agent fresh;
  auto req = fresh.request(t, "web1");
  // Signed over another CSR: a captured proof cannot be replayed with the thief's key.
  req.proof = old.prove("join", proto::parse_token(t)->id, fresh.request(t, "x").csr_pem);
  auto r = c().join(req, {"agent", "10.0.0.5"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), CoordinatorError::proof_invalid);
  // Signed by a key that is not the certificate's.
  Agent stranger;
  req.proof = old.prove("join", proto::parse_token(t)->id, req.csr_pem);
  req.proof->signature =
      cr::base64url_encode(stranger.tls
                               .sign(cr::as_bytes(proto::key_proof_message(
                                   "join", proto::parse_token(t)->id, req.csr_pem)))
                               .value());
  EXPECT_EQ(c().join(req, {"agent", "10.0.0.5"}).error(), CoordinatorError::proof_invalid);
  EXPECT_TRUE(c().identify_agent(old.cert_der()));
  req.proof.reset();
  EXPECT_TRUE(c().join(req, {"agent", "10.0.0.5"}));  // the token was not used up
}

TEST_F(TrustTest, TheProofOfARevokedNodeProvesNothingAndTheTokenMakesANewNode) {
  Agent old = join("web1");
  ASSERT_TRUE(c().revoke_node("web1", operator_));
  const std::string t = token();
  Agent fresh;
  auto req = fresh.request(t, "web1");
  req.proof = old.prove("join", proto::parse_token(t)->id, req.csr_pem);
  auto r = c().join(req, {"agent", "10.0.0.5"});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_NE(r->node_id, old.joined.node_id);
  EXPECT_EQ(r->name, "web1-2");
  auto joins = audit("join");
  ASSERT_FALSE(joins.empty());
  EXPECT_NE(std::string(joins.back().detail.at("proof_ignored").as_string()).find("revoked"),
            std::string::npos);
}

TEST_F(TrustTest, AnExpiredCertificateRenewsByProofWithinTheGraceOnly) {
  Agent a = join("web1");
  clock_.advance(std::chrono::hours(24 * 7) + std::chrono::hours(24 * 10));  // 10 days past
  EXPECT_FALSE(c().identify_agent(a.cert_der()));
  auto key = cr::EcPrivateKey::generate().value();
  proto::RenewRequest req{cr::make_csr(key, "web1").value(), std::nullopt};
  EXPECT_EQ(c().renew_with_proof(req, {"anonymous", "10.0.0.5"}).error(),
            CoordinatorError::invalid_argument);
  req.proof = a.prove("renew", "", req.csr_pem);
  auto renewed = c().renew_with_proof(req, {"anonymous", "10.0.0.5"});
  ASSERT_TRUE(renewed) << renewed.error().message();
  auto cert = cr::Certificate::from_pem(renewed->certificate_pem).value();
  EXPECT_EQ(cert.common_name(), a.joined.node_id);
  EXPECT_EQ(cert.public_key_der(), key.public_key_der());
  auto der = cert.der();
  EXPECT_TRUE(c().identify_agent({reinterpret_cast<const char*>(der.data()), der.size()}));

  // Past the grace (30 days by default) it takes a new token, and the error says so.
  Agent b = join("web2");
  clock_.advance(std::chrono::hours(24 * 7) + std::chrono::hours(24 * 31));
  proto::RenewRequest late{cr::make_csr(key, "web2").value(), std::nullopt};
  late.proof = b.prove("renew", "", late.csr_pem);
  auto refused = c().renew_with_proof(late, {"anonymous", "10.0.0.5"});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), CoordinatorError::renew_grace_passed);
  EXPECT_NE(refused.error().detail().find("rejoin"), std::string::npos);
  auto refusals = audit("renew.refused");
  ASSERT_EQ(refusals.size(), 1U);  // one caller, one window
  EXPECT_EQ(refusals[0].detail.at("count").as_int64(), 2);
  EXPECT_EQ(refusals[0].detail.at("reasons").as_object().size(), 2U);
}

TEST_F(TrustTest, ARenewalRevokesThePreviousSerialOnceTheAgentHasSwitched) {
  Agent a = join("web1");
  Agent peer = join("web2");
  const std::string old_serial = a.identity().cert_serial;
  auto key = cr::EcPrivateKey::generate().value();
  auto renewed = c().renew(a.identity(), {cr::make_csr(key, "web1").value(), std::nullopt}).value();
  // Until the agent presents the new certificate the old one still works (the answer to the
  // renewal may have been lost).
  EXPECT_TRUE(c().identify_agent(a.cert_der()));
  auto cert = cr::Certificate::from_pem(renewed.certificate_pem).value();
  auto der = cert.der();
  ASSERT_TRUE(c().identify_agent({reinterpret_cast<const char*>(der.data()), der.size()}));
  EXPECT_EQ(c().identify_agent(a.cert_der()).error(), CoordinatorError::node_revoked);
  // Every bundle lists it, so peers refuse it too.
  const auto revoked = bundle_of(peer).revoked_serials;
  EXPECT_NE(std::find(revoked.begin(), revoked.end(), old_serial), revoked.end());
  EXPECT_EQ(audit("cert.superseded").size(), 1U);
}

TEST_F(TrustTest, MacsBelongToNodesByDhcpOrAnOperatorNeverByAClaim) {
  Agent a = join("a");
  Agent b = join("b");
  ASSERT_TRUE(c().set_node_macs("a", {"52:54:00:00:00:01"}, {}, operator_));
  auto taken = c().set_node_macs("b", {"52:54:00:00:00:01"}, {}, operator_);
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error(), CoordinatorError::mac_owned);
  EXPECT_NE(taken.error().detail().find("belongs to node a"), std::string::npos);
  EXPECT_EQ(c().set_node_macs("b", {"not-a-mac"}, {}, operator_).error(),
            CoordinatorError::invalid_argument);
  // A report with the MAC changes nothing.
  boost::json::object facts{{"macs", boost::json::array{"52:54:00:00:00:01"}}};
  ASSERT_TRUE(c().report(b.identity(), "ready", facts));
  EXPECT_EQ(c().find_by_mac("52:54:00:00:00:01")->node_id, a.joined.node_id);
  // Moved by the operator: removed from a, then given to b.
  ASSERT_TRUE(c().set_node_macs("a", {}, {"52:54:00:00:00:01"}, operator_));
  EXPECT_FALSE(c().find_by_mac("52:54:00:00:00:01"));
  ASSERT_TRUE(c().set_node_macs("b", {"52:54:00:00:00:01"}, {}, operator_));
  EXPECT_EQ(c().find_by_mac("52:54:00:00:00:01")->node_id, b.joined.node_id);
  // Across a restart too.
  reopen();
  EXPECT_EQ(c().find_by_mac("52:54:00:00:00:01")->node_id, b.joined.node_id);
}

TEST_F(TrustTest, OneLiveBootTokenPerMacAlwaysBoundToAnAddress) {
  EXPECT_EQ(c().mint_boot_token(kMac, "", std::chrono::seconds(600)).error(),
            CoordinatorError::no_lease);
  EXPECT_EQ(c().mint_boot_token("bogus", "10.0.0.50", std::chrono::seconds(600)).error(),
            CoordinatorError::invalid_argument);
  auto first = c().mint_boot_token(kMac, "10.0.0.50", std::chrono::seconds(600)).value();
  const auto rev = c().revision();
  // A repeated script request gets the same token and writes nothing.
  auto again = c().mint_boot_token(kMac, "10.0.0.50", std::chrono::seconds(600)).value();
  EXPECT_EQ(again.token, first.token);
  EXPECT_EQ(c().revision(), rev);
  // Past half its life a fresh one replaces it.
  clock_.advance(std::chrono::seconds(400));
  auto later = c().mint_boot_token(kMac, "10.0.0.50", std::chrono::seconds(600)).value();
  EXPECT_NE(later.token, first.token);
  // A new lease (another address) revokes the old token.
  auto moved = c().mint_boot_token(kMac, "10.0.0.51", std::chrono::seconds(600)).value();
  EXPECT_NE(moved.token, later.token);
  Agent a;
  EXPECT_EQ(c().join(a.request(later.token, "pxe", {std::string(kMac)}), booting()).error(),
            CoordinatorError::token_revoked);
  std::size_t live = 0;
  for (const auto& t : c().list_tokens().value())
    live += t.kind == "boot" && t.state == "active" ? 1 : 0;
  EXPECT_EQ(live, 1U);
  // Expired boot tokens are deleted by the housekeeping.
  clock_.advance(std::chrono::seconds(700));
  c().maintain();
  for (const auto& t : c().list_tokens().value())
    EXPECT_NE(t.kind, "boot") << t.id;
}

TEST_F(TrustTest, RegisteredMachinesGiveTheirAddressToTheRegistry) {
  EXPECT_FALSE(c().registered_ip(kMac));
  auto m = c().register_machine("52:54:00:12:34:56", "10.0.0.9", "rack 4", operator_);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(c().registered_ip(kMac), "10.0.0.9");
  EXPECT_EQ(c().register_machine(kMac, "not-an-ip", "", operator_).error(),
            CoordinatorError::invalid_argument);
  reopen();
  EXPECT_EQ(c().registered_ip(kMac), "10.0.0.9");
  ASSERT_EQ(c().list_machines().value().size(), 1U);
  ASSERT_TRUE(c().unregister_machine(kMac, operator_));
  EXPECT_FALSE(c().registered_ip(kMac));
  EXPECT_EQ(c().unregister_machine(kMac, operator_).error(), CoordinatorError::not_found);
}

TEST_F(TrustTest, ASecretThatRequiresATpmSkipsFileProtectedNodes) {
  Agent tpm = join("db1", {{"role", "db"}});
  Agent file = join("db2", {{"role", "db"}});
  ASSERT_TRUE(c().report(tpm.identity(), "ready", {{"key_protection", "tpm+pcr"}}));
  ASSERT_TRUE(c().report(file.identity(), "ready", {{"key_protection", "file"}}));
  ASSERT_TRUE(c().set_secret("pw", "v", std::string("role=db"), operator_, std::string("tpm")));
  EXPECT_EQ(bundle_of(tpm).secrets.size(), 1U);
  EXPECT_TRUE(bundle_of(file).secrets.empty());
  EXPECT_EQ(c().list_secrets().value()[0].require, "tpm");
  EXPECT_EQ(c().set_secret("pw", "v", std::nullopt, operator_, std::string("magic")).error(),
            CoordinatorError::invalid_argument);
  // Lifting the requirement delivers it.
  ASSERT_TRUE(c().set_secret("pw", "v", std::nullopt, operator_, std::string()));
  EXPECT_EQ(bundle_of(file).secrets.size(), 1U);
}

TEST_F(TrustTest, RefusalsFromOneAddressBecomeOneAuditRowPerWindow) {
  refusal_window_ = std::chrono::seconds(60);
  reopen();
  const std::string t = token();
  for (int i = 0; i < 500; ++i) {
    Agent a;
    (void)c().join(a.request("0123456789abcdef.nope", "x"), {"anonymous", "192.0.2.7"});
  }
  (void)c().join(Agent{}.request(t + "x", "x"), {"anonymous", "192.0.2.8"});
  c().maintain();
  EXPECT_TRUE(audit_rows("join.refused").empty());  // the window is still open
  clock_.advance(std::chrono::seconds(61));
  c().maintain();
  auto rows = audit_rows("join.refused");
  ASSERT_EQ(rows.size(), 2U);
  EXPECT_EQ(rows[0].address, "192.0.2.7");
  EXPECT_EQ(rows[0].detail.at("count").as_int64(), 500);
  EXPECT_EQ(rows[0].detail.at("reasons").as_object().at("unknown token").as_int64(), 500);
  EXPECT_EQ(rows[1].address, "192.0.2.8");
  EXPECT_EQ(rows[1].detail.at("count").as_int64(), 1);
}

TEST_F(TrustTest, OperatorsHaveTheirOwnCredentialsThatExpireAndAreRevoked) {
  auto alice = c().add_operator("alice", std::chrono::hours(1), operator_);
  ASSERT_TRUE(alice) << alice.error().message();
  EXPECT_EQ(c().authenticate_operator(alice->token).value(), "alice");
  EXPECT_EQ(c().add_operator("alice", {}, operator_).error(), CoordinatorError::already_exists);
  EXPECT_EQ(c().add_operator("Bad Name", {}, operator_).error(),
            CoordinatorError::invalid_argument);
  auto bob = c().add_operator("bob", std::chrono::seconds(0), operator_).value();
  EXPECT_EQ(c().authenticate_operator("lab-op-nothing").error(),
            CoordinatorError::operator_unknown);

  clock_.advance(std::chrono::hours(2));
  auto expired = c().authenticate_operator(alice->token);
  ASSERT_FALSE(expired);
  EXPECT_EQ(expired.error(), CoordinatorError::operator_expired);
  EXPECT_NE(expired.error().detail().find("'alice' expired at"), std::string::npos);
  EXPECT_EQ(c().authenticate_operator(bob.token).value(), "bob");  // no expiry

  ASSERT_TRUE(c().revoke_operator("bob", operator_));
  EXPECT_EQ(c().authenticate_operator(bob.token).error(), CoordinatorError::operator_revoked);
  EXPECT_EQ(c().revoke_operator("admin", operator_).error(), CoordinatorError::invalid_argument);
  reopen();
  EXPECT_EQ(c().authenticate_operator(bob.token).error(), CoordinatorError::operator_revoked);
  auto list = c().list_operators().value();
  ASSERT_EQ(list.size(), 3U);
  EXPECT_EQ(list[0].name, "admin");
  EXPECT_EQ(list[1].state, "expired");
  EXPECT_EQ(list[2].state, "revoked");
  // A revoked name can be given again: the new credential works, the revoked one stays refused,
  // also after a restart.
  auto bob2 = c().add_operator("bob", std::chrono::seconds(0), operator_);
  ASSERT_TRUE(bob2) << bob2.error().message();
  EXPECT_EQ(c().authenticate_operator(bob2->token).value(), "bob");
  EXPECT_EQ(c().authenticate_operator(bob.token).error(), CoordinatorError::operator_unknown);
  reopen();
  EXPECT_EQ(c().authenticate_operator(bob2->token).value(), "bob");
  EXPECT_FALSE(c().authenticate_operator(bob.token));
  EXPECT_EQ(c().list_operators().value().size(), 3U);
  // The audit trail names who did it.
  auto adds = audit("operator.add");
  ASSERT_EQ(adds.size(), 3U);
  EXPECT_EQ(adds[0].actor, operator_.name);
}

TEST_F(TrustTest, ReportsAreRateLimitedAndPeerAddressesMustBeLiterals) {
  Agent a = join("web1");
  for (const char* bad : {"peer.example:8444", "10.0.0.7", "10.0.0.7:0", "10.0.0.7:99999",
                          "::1:8444", "10.0.0.7:8444\n"}) {
    auto r = c().report(a.identity(), "ready", {{"peer_address", bad}});
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error(), CoordinatorError::invalid_argument) << bad;
  }
  int ok = 0;
  int limited = 0;
  for (int i = 0; i < 20; ++i) {
    auto r = c().report(a.identity(), "ready", {{"peer_address", "[fd00::7]:8444"}});
    if (r)
      ++ok;
    else if (r.error() == CoordinatorError::rate_limited)
      ++limited;
  }
  EXPECT_EQ(ok, 6);  // the default burst
  EXPECT_EQ(limited, 14);
  clock_.advance(std::chrono::seconds(10));
  EXPECT_TRUE(c().report(a.identity(), "ready", {{"peer_address", "10.0.0.7:8444"}}));
}

TEST_F(TrustTest, PeerAddressChangesReachOtherBundlesDebounced) {
  Agent a = join("a");
  Agent b = join("b");
  ASSERT_TRUE(c().report(a.identity(), "ready", {{"peer_address", "10.0.0.1:8444"}}));
  ASSERT_TRUE(c().report(b.identity(), "ready", {{"peer_address", "10.0.0.2:8444"}}));
  auto peers = [&](const Agent& x) {
    std::vector<std::string> out;
    for (const auto& p : bundle_of(x).peers)
      out.push_back(p.address);
    return out;
  };
  // The first change went out at once; the second waits for the debounce.
  EXPECT_EQ(peers(b), std::vector<std::string>{"10.0.0.1:8444"});
  EXPECT_TRUE(peers(a).empty());
  const auto rev = c().revision();
  c().maintain();
  EXPECT_TRUE(peers(a).empty());
  clock_.advance(std::chrono::seconds(31));
  c().maintain();
  EXPECT_EQ(peers(a), std::vector<std::string>{"10.0.0.2:8444"});
  EXPECT_GT(c().revision(), rev);
}

}  // namespace
}  // namespace lab::bootstrap::coordinator::testing
