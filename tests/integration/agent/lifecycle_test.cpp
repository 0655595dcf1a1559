// The node's identity over its life, against a real `lab serve`, real labd binaries and a
// swtpm per node: a rejoin keeps the node while its key works and becomes a new node once it
// was revoked, `labd status` says when the coordinator refuses the node, an expired certificate
// is renewed by key proof within the renewal grace and not past it, secrets that require a TPM
// reach only nodes whose keys a TPM protects, and a rate-limited report is no sync failure.
#include "agent/daemon/node.hpp"
#include "agent/sync/proof.hpp"
#include "shared/crypto/x509.hpp"
#include "shared/http/beast_client/client.hpp"
#include "shared/json/json.hpp"
#include "shared/protocol/protocol.hpp"
#include "tests/integration/agent/appliance.hpp"
#include "tests/integration/agent/labd_fixture.hpp"
#include "tests/integration/pxe/httpboot/curl.hpp"
#include "tests/support/text.hpp"

#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <regex>
#include <thread>
#include <utility>

namespace {

using namespace lab::tests;
namespace daemon = lab::agent::daemon;
namespace http = lab::shared::http;
namespace crypto = lab::shared::crypto;
namespace protocol = lab::shared::protocol;

boost::json::object json_of(const std::string& text) {
  auto o = lab::shared::json::parse_object(text);
  EXPECT_TRUE(o) << text;
  return o ? *o : boost::json::object{};
}

std::string text(const boost::json::value& v) {
  return v.is_string() ? std::string(v.as_string()) : std::string();
}

struct Status {
  int exit_code = -1;
  boost::json::object doc;
  std::string output;
};

Status status_of(const LabdNode& n) {
  auto r = n.labd({"status", "--output", "json"});
  return {r.exit_code, json_of(r.output), r.output};
}

// The status once `sync` reads `state`, or the last one read when 20 s passed first.
Status status_when(const LabdNode& n, const char* state) {
  Status last;
  wait_until(
      [&] {
        last = status_of(n);
        return last.doc["sync"] == state;
      },
      20s);
  return last;
}

// The coordinator's answer to a bundle request made with this certificate and key.
unsigned bundle_status(const LabServe& serve, const lab::agent::cache::Identity& id) {
  http::BeastClientOptions o;
  o.base_url = serve.url();
  o.ca_pem = id.ca_pem;
  o.client_cert_pem = id.certificate_pem;
  o.client_key_pem = id.tls_key_pem;
  http::BeastClient client(std::move(o));
  auto r = client.get("/v1/agent/bundle?since=0&wait=0");
  EXPECT_TRUE(r) << r.error().message();
  return r ? r->status : 0;
}

// POST /v1/renew as the agent makes it, with a key proof by `id`'s certificate and key over a
// fresh CSR, and no client certificate: the coordinator's status and body.
std::pair<unsigned, std::string> renew_by_proof(const LabServe& serve,
                                                const lab::agent::cache::Identity& id) {
  auto key = crypto::EcPrivateKey::generate().value();
  protocol::RenewRequest request;
  request.csr_pem = crypto::make_csr(key, id.node_id).value();
  auto prove = lab::agent::sync::proof_signer(id.certificate_pem, id.tls_key_pem).value();
  request.proof = prove(protocol::key_proof_message("renew", "", request.csr_pem)).value();
  http::BeastClientOptions o;
  o.base_url = serve.url();
  o.ca_pem = id.ca_pem;
  http::BeastClient client(std::move(o));
  auto r = client.post_json("/v1/renew", boost::json::serialize(protocol::to_json(request)));
  EXPECT_TRUE(r) << r.error().message();
  return r ? std::pair{r->status, r->body} : std::pair{0U, std::string()};
}

// What the node's cache holds (labd must not be running: the cache is opened here).
lab::agent::cache::Identity identity_of(const LabdNode& n) {
  auto opened = daemon::open_node(n.settings());
  EXPECT_TRUE(opened) << opened.error().message();
  return opened ? opened->identity : lab::agent::cache::Identity{};
}

class LabdLifecycle : public ::testing::Test {
 protected:
  void SetUp() override { LAB_REQUIRE_PROGRAM("swtpm"); }

  boost::json::object node_json(const LabServe& serve, const std::string& id) {
    return json_of(serve.lab_out({"node", "show", id, "--output", "json"}));
  }

  // `labd rejoin -` with the join string on stdin, as the SSH installer runs it.
  static CommandResult rejoin_from_stdin(const LabdNode& n, const std::string& join_string,
                                         const std::string& hostname) {
    return sh("printf '%s\\n' '" + join_string + "' | TSS2_LOG=all+none " + labd_binary().string() +
                  " --config " + n.config().string() + " rejoin - --hostname " + hostname,
              60s);
  }

  static bool wait_synced(const LabdNode& n, std::chrono::milliseconds timeout = 30s) {
    return wait_until([&] { return status_of(n).exit_code == 0; }, timeout);
  }
};

// A host enrolled again (the SSH installer's rejoin, an operator's `labd rejoin`) stays the node
// it was while its key works: same id, name and labels, new keys; the old certificate is dead.
TEST_F(LabdLifecycle, RejoinKeepsTheNodeAndRetiresTheOldCertificate) {
  LabServe serve;
  LabdNode node;
  auto joined = node.labd({"join", serve.token({"fleet=r"}), "--hostname", "keeper"});
  ASSERT_EQ(joined.exit_code, 0) << joined.output;
  const std::string id = text(status_of(node).doc["node_id"]);
  ASSERT_FALSE(id.empty());
  {
    auto agent = node.start();
    ASSERT_TRUE(node.wait_ready()) << agent.output();
    ASSERT_EQ(serve.lab({"node", "label", id, "color=green", "--overwrite"}).exit_code, 0);
    const auto value = node.dir().write("value", "kept-across-keys");
    ASSERT_EQ(serve
                  .lab({"secret", "set", "keeper-pw", "--from-file", value.string(),
                        "--entitlement", "fleet=r"})
                  .exit_code,
              0);
    ASSERT_TRUE(wait_until(
        [&] {
          return contains(read_file(node.run_dir() / "labels.json"), "\"color\":\"green\"") &&
                 node.labd({"secret", "get", "keeper-pw"}).output == "kept-across-keys";
        },
        30s))
        << agent.output();
    EXPECT_EQ(agent.stop(), 0);
  }
  const auto old = identity_of(node);
  ASSERT_EQ(bundle_status(serve, old), 200U);
  const auto state_before = node_json(serve, id)["state"];

  auto rejoined = rejoin_from_stdin(node, serve.token(), "keeper");
  ASSERT_EQ(rejoined.exit_code, 0) << rejoined.output << serve.output();
  EXPECT_TRUE(contains(rejoined.output, "rejoined as keeper (" + id + ")")) << rejoined.output;
  EXPECT_TRUE(contains(rejoined.output, "same node, new keys")) << rejoined.output;
  const auto fresh = identity_of(node);
  EXPECT_EQ(fresh.node_id, id);
  EXPECT_NE(fresh.tls_key_pem, old.tls_key_pem);
  EXPECT_NE(fresh.sealing_key, old.sealing_key);

  auto shown = node_json(serve, id);
  EXPECT_EQ(shown["name"], "keeper");
  EXPECT_EQ(shown["state"], state_before);  // the node it was, not a new one to accept
  ASSERT_TRUE(shown["labels"].is_object()) << shown;
  EXPECT_EQ(shown["labels"].as_object()["color"], "green");
  EXPECT_EQ(shown["labels"].as_object()["fleet"], "r");
  EXPECT_EQ(text(node_json(serve, "keeper")["id"]), id);  // no second node under that name
  EXPECT_EQ(bundle_status(serve, old), 403U);             // the old certificate is revoked
  EXPECT_NE(bundle_status(serve, fresh), 403U);

  // Restarted, the agent serves and syncs with its new keys: the labels of the node it still
  // is, and a change made now.
  auto agent = node.start();
  ASSERT_TRUE(node.wait_ready()) << agent.output();
  ASSERT_TRUE(wait_synced(node)) << status_of(node).output << agent.output();
  ASSERT_EQ(serve.lab({"node", "label", id, "phase=after", "--overwrite"}).exit_code, 0);
  ASSERT_TRUE(wait_until(
      [&] {
        const auto labels = read_file(node.run_dir() / "labels.json");
        return contains(labels, "\"phase\":\"after\"") && contains(labels, "\"color\":\"green\"");
      },
      30s))
      << agent.output();
  // Its secret comes sealed to the new key, and opens with it.
  EXPECT_EQ(node.labd({"secret", "get", "keeper-pw"}).output, "kept-across-keys");
  EXPECT_EQ(agent.stop(), 0);
}

// A revoked node that rejoins proves nothing with its key: the token makes a new node, and the
// command says so.
TEST_F(LabdLifecycle, ARevokedNodeRejoinsAsANewNodeAndIsToldSo) {
  LabServe serve;
  LabdNode node;
  ASSERT_EQ(node.labd({"join", serve.token(), "--hostname", "gone"}).exit_code, 0);
  const std::string old_id = text(status_of(node).doc["node_id"]);
  ASSERT_EQ(serve.lab({"node", "label", old_id, "color=red"}).exit_code, 0);
  ASSERT_EQ(serve.lab({"node", "revoke", old_id}).exit_code, 0);

  auto rejoined = node.labd({"rejoin", serve.token(), "--hostname", "gone"});
  ASSERT_EQ(rejoined.exit_code, 0) << rejoined.output;
  const std::string new_id = text(status_of(node).doc["node_id"]);
  ASSERT_FALSE(new_id.empty());
  EXPECT_NE(new_id, old_id);
  EXPECT_TRUE(contains(rejoined.output, "rejoined as gone-2 (" + new_id + ")")) << rejoined.output;
  EXPECT_TRUE(contains(rejoined.output, "a new node, not gone (" + old_id + ")"))
      << rejoined.output;
  EXPECT_FALSE(contains(rejoined.output, "same node")) << rejoined.output;
  EXPECT_TRUE(contains(rejoined.output,
                       "named gone-2 because the revoked node still holds the name gone; "
                       "'lab node delete " +
                           old_id + "' forgets it"))
      << rejoined.output;
  auto shown = node_json(serve, new_id);
  EXPECT_EQ(shown["name"], "gone-2");
  EXPECT_FALSE(shown["labels"].as_object().contains("color")) << shown;
  EXPECT_EQ(node_json(serve, old_id)["state"], "revoked");
}

// `lab node delete` forgets a revoked node and frees its name; an enrolled node is refused,
// and the deleted node's certificate stays refused.
TEST_F(LabdLifecycle, ADeletedRevokedNodeFreesItsNameAndItsCertificateStaysRefused) {
  LabServe serve;
  LabdNode node;
  ASSERT_EQ(node.labd({"join", serve.token(), "--hostname", "spare"}).exit_code, 0);
  const auto old_identity = identity_of(node);
  const std::string old_id = old_identity.node_id;

  auto active = serve.lab({"node", "delete", "spare"});
  EXPECT_EQ(active.exit_code, 1) << active.output;
  EXPECT_TRUE(contains(active.output, "only a revoked node can be deleted")) << active.output;

  ASSERT_EQ(serve.lab({"node", "revoke", "spare"}).exit_code, 0);
  auto deleted = serve.lab({"node", "delete", "spare"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.output;
  EXPECT_TRUE(contains(deleted.output, "node spare deleted")) << deleted.output;
  auto gone = serve.lab({"node", "show", old_id});
  EXPECT_EQ(gone.exit_code, 1) << gone.output;
  EXPECT_TRUE(contains(gone.output, "no node")) << gone.output;
  EXPECT_EQ(bundle_status(serve, old_identity), 403U);

  // The name is free: the next machine that asks for it gets it.
  LabdNode other;
  auto joined = other.labd({"join", serve.token(), "--hostname", "spare"});
  ASSERT_EQ(joined.exit_code, 0) << joined.output;
  EXPECT_TRUE(contains(joined.output, "joined as spare (")) << joined.output;
  EXPECT_NE(identity_of(other).node_id, old_id);

  // The audit trail names the deletion; after a restart the old certificate is still refused.
  auto audit = serve.lab({"audit", "list", "--output", "json"});
  EXPECT_TRUE(contains(audit.output, "node.delete")) << audit.output;
  ASSERT_EQ(serve.stop(), 0);
  serve.start();
  EXPECT_EQ(bundle_status(serve, old_identity), 403U);
}

// Revoked while running: `labd status` says "refused" with the coordinator's answer and exits 3,
// the cache is still served, and its staleness grows (a 403 is an answer, not a confirmation).
TEST_F(LabdLifecycle, StatusSaysRefusedAfterRevokeAndStalenessGrows) {
  LabServe serve;
  LabdNode node;
  ASSERT_EQ(node.labd({"join", serve.token({"role=db"})}).exit_code, 0);
  const std::string id = text(status_of(node).doc["node_id"]);
  auto agent = node.start();
  ASSERT_TRUE(node.wait_ready()) << agent.output();
  ASSERT_TRUE(wait_synced(node)) << status_of(node).output << agent.output();
  auto ok = status_of(node);
  EXPECT_EQ(ok.doc["sync"], "ok") << ok.output;
  EXPECT_TRUE(ok.doc["last_error"].is_null()) << ok.output;

  ASSERT_EQ(serve.lab({"node", "revoke", id}).exit_code, 0);
  // A parked long-poll is answered 403 at once; otherwise the next poll (sync.wait = 2 s) is.
  Status refused = status_when(node, "refused");
  ASSERT_EQ(refused.doc["sync"], "refused") << refused.output << agent.output();
  EXPECT_EQ(refused.doc["state"], "refused") << refused.output;
  EXPECT_EQ(refused.exit_code, 3) << refused.output;
  EXPECT_TRUE(contains(text(refused.doc["last_error"]), "403")) << refused.output;
  EXPECT_EQ(refused.doc["coordinator_reachable"], true) << refused.output;
  const auto first = refused.doc["staleness_seconds"].as_int64();
  std::this_thread::sleep_for(3s);
  auto later = status_of(node);
  EXPECT_EQ(later.doc["sync"], "refused") << later.output;
  EXPECT_GE(later.doc["staleness_seconds"].as_int64(), first + 3) << later.output;
  EXPECT_EQ(later.doc["last_confirmed"], refused.doc["last_confirmed"]) << later.output;

  // Still serving what it had.
  auto labels = node.labd({"labels", "--output", "json"});
  EXPECT_EQ(labels.exit_code, 0) << labels.output;
  EXPECT_EQ(json_of(labels.output)["labels"].as_object()["role"], "db");
  auto human = node.labd({"status"});
  EXPECT_EQ(human.exit_code, 3) << human.output;
  EXPECT_TRUE(contains(human.output, "refused")) << human.output;
  // Text shows times as ISO 8601 with their age, and durations in a short form too.
  EXPECT_TRUE(std::regex_search(
      human.output,
      std::regex(R"(\nlast_confirmed +20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z \([0-9]+s ago\)\n)")))
      << human.output;
  EXPECT_TRUE(
      std::regex_search(human.output, std::regex(R"(\nstaleness_seconds +[0-9]+ \([0-9]+s\)\n)")))
      << human.output;

  // Stopped, nobody syncs: "stopped", exit 4.
  EXPECT_EQ(agent.stop(), 0);
  auto stopped = status_of(node);
  EXPECT_EQ(stopped.doc["sync"], "stopped") << stopped.output;
  EXPECT_EQ(stopped.exit_code, 4) << stopped.output;
}

// Liveness as `lab node list` tells it: a polling agent is seen now, a killed one is `offline`
// once coordinator.offline_after (3 s here) passed, and comes back `ready` with its agent. The
// last-seen time survives a restart of the appliance.
TEST_F(LabdLifecycle, AKilledAgentIsShownOfflineWithinTheConfiguredTime) {
  LabServe serve({"coordinator.offline_after=3s"});
  LabdNode node;
  ASSERT_EQ(node.labd({"join", serve.token()}).exit_code, 0);
  const std::string id = text(status_of(node).doc["node_id"]);
  auto agent = node.start();
  ASSERT_TRUE(node.wait_ready()) << agent.output();
  ASSERT_TRUE(wait_synced(node)) << status_of(node).output << agent.output();

  const auto unix_now = [] {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  // -o anywhere on labd's line too, and YAML as well as JSON.
  auto yaml = node.labd({"-o", "yaml", "status"});
  EXPECT_EQ(yaml.exit_code, 0) << yaml.output;
  EXPECT_TRUE(yaml.output.starts_with("---\nnode_id: " + id + "\n")) << yaml.output;
  EXPECT_EQ(json_of(node.labd({"labels", "-o", "json"}).output)["revision"],
            status_of(node).doc["revision"]);

  // Seen on every poll, not only when it reports: well after its report, still seen now.
  std::this_thread::sleep_for(5s);
  auto live = node_json(serve, id);
  EXPECT_EQ(live["state"], "ready") << live;
  EXPECT_GE(live["last_seen"].as_int64(), unix_now() - 3) << live;
  auto table = serve.lab({"node", "list"});
  EXPECT_TRUE(std::regex_search(table.output, std::regex(R"(\bready\b)"))) << table.output;

  agent.signal(SIGKILL);
  (void)agent.wait(5s);
  const auto killed_at = unix_now();
  boost::json::object shown;
  const bool offline = wait_until(
      [&] {
        shown = node_json(serve, id);
        return shown["state"] == "offline";
      },
      10s);
  ASSERT_TRUE(offline) << shown;
  EXPECT_EQ(shown["reported_state"], "ready") << shown;
  EXPECT_EQ(shown["polling"], false) << shown;
  EXPECT_GE(shown["last_seen"].as_int64(), killed_at - 3) << shown;
  EXPECT_LE(shown["last_seen"].as_int64(), killed_at + 1) << shown;
  table = serve.lab({"node", "list"});
  EXPECT_TRUE(contains(table.output, "offline")) << table.output;

  // Stopped cleanly, the appliance keeps when the agent was last seen.
  ASSERT_EQ(serve.stop(), 0);
  serve.start();
  auto after = node_json(serve, id);
  EXPECT_EQ(after["state"], "offline") << after;
  EXPECT_EQ(after["last_seen"], shown["last_seen"]) << after;

  auto again = node.start();
  ASSERT_TRUE(node.wait_ready()) << again.output();
  const bool back = wait_until([&] { return node_json(serve, id)["state"] == "ready"; }, 20s);
  EXPECT_TRUE(back) << node_json(serve, id) << again.output();
}

// A node off longer than its certificate's lifetime (but within the renewal grace) renews by
// key proof on start and syncs again. The appliance issues 6 s certificates for this.
TEST_F(LabdLifecycle, AnExpiredCertificateIsRenewedOnStartAndSyncResumes) {
  LabServe serve({"coordinator.certificate_ttl=6s"});
  LabdNode node;
  ASSERT_EQ(node.labd({"join", serve.token()}).exit_code, 0);
  const auto joined = identity_of(node);
  const std::string id = joined.node_id;
  const auto cert = lab::shared::crypto::Certificate::from_pem(joined.certificate_pem).value();
  std::this_thread::sleep_until(cert.not_after() + 1500ms);
  ASSERT_EQ(bundle_status(serve, joined), 403U);  // expired: mTLS refused
  ASSERT_EQ(serve.lab({"node", "label", id, "after=expiry"}).exit_code, 0);

  auto agent = node.start();
  ASSERT_TRUE(node.wait_ready()) << agent.output();
  ASSERT_TRUE(wait_until(
      [&] { return contains(read_file(node.run_dir() / "labels.json"), "\"after\":\"expiry\""); },
      30s))
      << agent.output() << serve.output();
  EXPECT_TRUE(contains(agent.output(), "certificate renewed")) << agent.output();
  EXPECT_TRUE(wait_synced(node)) << status_of(node).output;
  EXPECT_EQ(text(status_of(node).doc["node_id"]), id);
  EXPECT_EQ(agent.stop(), 0);
  EXPECT_NE(identity_of(node).certificate_pem, joined.certificate_pem);

  // The new certificate was used, so the one it replaced is revoked: on record, and its key
  // proves nothing any more (a copy of the old key cannot renew its way back in).
  const auto audit = serve.lab({"audit", "list", "--output", "json", "--limit", "1000"});
  EXPECT_TRUE(contains(audit.output, "cert.superseded")) << audit.output;
  EXPECT_TRUE(contains(audit.output, cert.serial())) << audit.output;
  const auto [status, body] = renew_by_proof(serve, joined);
  EXPECT_EQ(status, 403U) << body;
  EXPECT_FALSE(contains(body, "renew_grace_passed")) << body;
}

// Off longer than its certificate's lifetime plus the renewal grace: the coordinator refuses
// the renewal for good. labd keeps serving its cache, asks no more, and `labd status` says the
// node is refused and must join again; a rejoin then makes a new node, as its proof is stale.
TEST_F(LabdLifecycle, PastTheRenewalGraceStatusSaysRefusedAndRejoinMakesANewNode) {
  LabServe serve({"coordinator.certificate_ttl=3s", "coordinator.renew_grace=2s"});
  LabdNode node;
  ASSERT_EQ(node.labd({"join", serve.token({"role=web"}), "--hostname", "traveller"}).exit_code, 0);
  const auto joined = identity_of(node);
  {
    auto agent = node.start();
    ASSERT_TRUE(node.wait_ready()) << agent.output();
    ASSERT_TRUE(wait_synced(node)) << status_of(node).output << agent.output();
    EXPECT_EQ(agent.stop(), 0);
  }
  const auto cert = crypto::Certificate::from_pem(identity_of(node).certificate_pem).value();
  std::this_thread::sleep_until(cert.not_after() + 3500ms);

  auto agent = node.start();
  ASSERT_TRUE(node.wait_ready()) << agent.output();
  Status refused = status_when(node, "refused");
  ASSERT_EQ(refused.doc["sync"], "refused") << refused.output << agent.output();
  EXPECT_EQ(refused.exit_code, 3) << refused.output;
  EXPECT_TRUE(contains(text(refused.doc["last_error"]), "coordinator.renew_grace"))
      << refused.output;
  EXPECT_EQ(refused.doc["coordinator_reachable"], true) << refused.output;
  // The cache is still served.
  EXPECT_EQ(json_of(node.labd({"labels", "--output", "json"}).output)["labels"].as_object()["role"],
            "web");
  // A few more rounds (sync.wait 2 s, backoff up to 2 s): the renewal is not asked again, since
  // every refusal counts against this address at the coordinator.
  std::this_thread::sleep_for(5s);
  const std::string out = agent.output();
  std::size_t asked = 0;
  for (auto at = out.find("renewal grace: renewal stopped"); at != std::string::npos;
       at = out.find("renewal grace: renewal stopped", at + 1)) {
    ++asked;
  }
  EXPECT_EQ(asked, 1U) << out;
  const std::string served = serve.output();
  EXPECT_NE(served.find("renewal refused"), std::string::npos) << served;
  EXPECT_EQ(served.find("renewal refused"), served.rfind("renewal refused")) << served;
  EXPECT_EQ(status_of(node).exit_code, 3);
  EXPECT_EQ(agent.stop(), 0);

  auto rejoined = node.labd({"rejoin", serve.token(), "--hostname", "traveller"});
  ASSERT_EQ(rejoined.exit_code, 0) << rejoined.output;
  EXPECT_TRUE(contains(rejoined.output, "a new node, not traveller (" + joined.node_id + ")"))
      << rejoined.output;
  EXPECT_NE(identity_of(node).node_id, joined.node_id);
}

// A secret set with ?require=tpm reaches the entitled node whose keys a TPM protects and is
// withheld from the entitled node that keeps its data key in a file.
TEST_F(LabdLifecycle, ASecretThatRequiresATpmReachesOnlyTheTpmBackedNode) {
  LAB_REQUIRE_PROGRAM("curl");
  LabServe serve;
  LabdNode tpm;
  LabdNode file({}, /*with_tpm=*/false);
  file.write_config("key_protection = \"file\"");
  ASSERT_EQ(tpm.labd({"join", serve.token({"role=db"})}).exit_code, 0);
  ASSERT_EQ(file.labd({"join", serve.token({"role=db"})}).exit_code, 0);
  auto tpm_agent = tpm.start();
  auto file_agent = file.start();
  ASSERT_TRUE(tpm.wait_ready()) << tpm_agent.output();
  ASSERT_TRUE(file.wait_ready()) << file_agent.output();

  auto put = [&](const std::string& name, const std::string& query, const std::string& value) {
    auto args = serve.operator_auth();
    args.insert(args.end(), {"-X", "PUT", "--data-binary", value});
    return lab::tests::httpboot::curl(serve.url() + "/v1/secrets/" + name + "?" + query, args);
  };
  auto sealed = put("sealed-only", "entitlement=role%3Ddb&require=tpm", "needs-a-tpm");
  ASSERT_EQ(sealed.status, 200) << sealed.error << sealed.body;
  EXPECT_TRUE(contains(sealed.body, "\"require\":\"tpm\"")) << sealed.body;
  // Set after it: once a node has this one, its bundle is newer than the first secret.
  auto any = put("anyone", "entitlement=role%3Ddb", "plain");
  ASSERT_EQ(any.status, 200) << any.error << any.body;

  ASSERT_TRUE(wait_until(
      [&] {
        return tpm.labd({"secret", "get", "sealed-only"}).output == "needs-a-tpm" &&
               tpm.labd({"secret", "get", "anyone"}).output == "plain";
      },
      30s))
      << tpm_agent.output();
  ASSERT_TRUE(wait_until(
      [&] {
        return file.labd({"secret", "get", "anyone"}).output == "plain";
      },
      30s))
      << file_agent.output();
  auto withheld = file.labd({"secret", "get", "sealed-only"});
  EXPECT_NE(withheld.exit_code, 0) << withheld.output;
  EXPECT_FALSE(contains(withheld.output, "needs-a-tpm")) << withheld.output;
  EXPECT_FALSE(std::filesystem::exists(file.run_dir() / "secrets" / "sealed-only"));
  EXPECT_EQ(status_of(file).doc["key_protection"], "degraded");
  EXPECT_EQ(status_of(file).exit_code, 0);  // withheld is not a failure
  EXPECT_EQ(tpm_agent.stop(), 0);
  EXPECT_EQ(file_agent.stop(), 0);
}

// The coordinator takes 6 reports at once, then one per report_interval (1 h here): the 7th
// start's report is answered 429. The agent says so and goes on syncing, healthy.
TEST_F(LabdLifecycle, ARateLimitedReportIsNoSyncFailure) {
  LabServe serve({"coordinator.report_interval=1h"});
  LabdNode node;
  ASSERT_EQ(node.labd({"join", serve.token()}).exit_code, 0);
  const std::string id = text(status_of(node).doc["node_id"]);
  for (int i = 0; i < 6; ++i) {
    auto agent = node.start();
    ASSERT_TRUE(node.wait_ready()) << agent.output();
    ASSERT_TRUE(wait_synced(node)) << status_of(node).output << agent.output();
    EXPECT_FALSE(contains(agent.output(), "rate-limited")) << i << agent.output();
    EXPECT_EQ(agent.stop(), 0);
  }
  auto agent = node.start();
  ASSERT_TRUE(node.wait_ready()) << agent.output();
  ASSERT_TRUE(wait_until([&] { return contains(agent.output(), "report rate-limited"); }, 20s))
      << agent.output() << serve.output();
  // The coordinator names its delay (Retry-After: report_interval) and the agent keeps to it.
  EXPECT_TRUE(contains(agent.output(), "retry_in_seconds=3600")) << agent.output();
  ASSERT_EQ(serve.lab({"node", "label", id, "still=syncing"}).exit_code, 0);
  EXPECT_TRUE(wait_until(
      [&] { return contains(read_file(node.run_dir() / "labels.json"), "\"still\":\"syncing\""); },
      30s))
      << agent.output();
  auto status = status_of(node);
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_EQ(status.doc["sync"], "ok") << status.output;
  EXPECT_FALSE(contains(agent.output(), "sync failed")) << agent.output();
  EXPECT_EQ(agent.stop(), 0);
}

// What protects the node's keys reaches the coordinator (which decides secrets that require a
// TPM by it): at join, and in the agent's report.
TEST_F(LabdLifecycle, KeyProtectionIsReportedAtJoinAndByTheAgent) {
  LabServe serve;
  LabdNode pcr("tpm_pcrs = [16]");
  LabdNode file({}, /*with_tpm=*/false);
  file.write_config("key_protection = \"file\"");
  ASSERT_EQ(pcr.labd({"join", serve.token()}).exit_code, 0);
  ASSERT_EQ(file.labd({"join", serve.token()}).exit_code, 0);
  const std::string pcr_id = text(status_of(pcr).doc["node_id"]);
  const std::string file_id = text(status_of(file).doc["node_id"]);
  EXPECT_EQ(node_json(serve, pcr_id)["key_protection"], "tpm+pcr");
  EXPECT_EQ(node_json(serve, file_id)["key_protection"], "file");

  // The report replaces the node's facts whole and moves it to "ready".
  auto agent = pcr.start();
  ASSERT_TRUE(pcr.wait_ready()) << agent.output();
  boost::json::object shown;
  ASSERT_TRUE(wait_until(
      [&] {
        shown = node_json(serve, pcr_id);
        return shown["state"] == "ready";
      },
      30s))
      << agent.output();
  ASSERT_TRUE(shown["facts"].is_object()) << shown;
  EXPECT_EQ(shown["facts"].as_object()["key_protection"], "tpm+pcr") << shown;
  EXPECT_EQ(shown["key_protection"], "tpm+pcr") << shown;
}

}  // namespace
