// The agent side against a real `lab serve`: join with a real CSR, mTLS, bundle long-polls,
// secrets only for entitled nodes, and one token shared by many racing joins.
#include "shared/crypto/encoding.hpp"
#include "shared/envelope/envelope.hpp"
#include "shared/json/json.hpp"
#include "shared/protocol/protocol.hpp"
#include "tests/integration/bootstrap/coordinator/appliance.hpp"
#include "tests/support/pki.hpp"
#include "tests/support/text.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

namespace lab::tests::coordinator {
namespace {

namespace cr = shared::crypto;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

using lab::tests::contains;

std::int64_t revision_of(const shared::http::ClientResponse& r) {
  const auto h = r.headers.get("Lab-Revision");
  return h ? std::stoll(std::string(*h)) : -1;
}

// The revision of the node's current bundle (its first poll, since=0); -1 when refused.
std::int64_t first_bundle_revision(shared::http::Client& c) {
  auto first = c.get("/v1/agent/bundle?since=0");
  if (!first || first->status != 200) {
    ADD_FAILURE() << "first bundle: "
                  << (first ? std::to_string(first->status) : first.error().message());
    return -1;
  }
  return revision_of(*first);
}

// Opens a bundle envelope with the key the join answered and parses its payload.
std::optional<shared::protocol::Bundle> open_bundle(const JoinedNode& node,
                                                    const std::string& bytes) {
  auto raw = cr::base64url_decode(node.bundle_key);
  if (!raw)
    return std::nullopt;
  auto key = cr::Ed25519PublicKey::from_raw(*raw);
  if (!key)
    return std::nullopt;
  auto env = shared::envelope::open(cr::as_bytes(bytes), *key, shared::protocol::kBundleKind);
  if (!env) {
    ADD_FAILURE() << "envelope: " << env.error().message();
    return std::nullopt;
  }
  auto b = shared::protocol::parse_bundle(cr::as_chars(env->payload));
  if (!b)
    return std::nullopt;
  return *b;
}

TEST(CoordinatorAgent, JoinWithARealCsrGivesACertificateFromTheCa) {
  Appliance a;
  auto node = join(a, a.create_token("role=web"), "web-1");
  ASSERT_TRUE(node);
  EXPECT_EQ(node->name, "web-1");
  auto cert = cr::Certificate::from_pem(node->certificate_pem);
  ASSERT_TRUE(cert);
  auto ca = cr::Certificate::from_pem(a.ca_pem());
  ASSERT_TRUE(ca);
  EXPECT_TRUE(cr::verify_certificate(*cert, *ca, std::chrono::system_clock::now()));
  EXPECT_EQ(cert->common_name(), node->id);
  EXPECT_EQ(cert->public_key_der(), node->key.public_key_der());

  // The certificate works over mTLS with curl; the first bundle comes at once.
  auto [crt, key] = write_client_pem(a, "web-1", node->certificate_pem, node->key.to_pem());
  auto first = a.curl({"--cert", crt.string(), "--key", key.string(), "-D", "-"},
                      "/v1/agent/bundle?since=0");
  EXPECT_EQ(first.status, 200) << first.output;
  EXPECT_TRUE(contains(first.output, "Lab-Revision:") || contains(first.output, "lab-revision:"))
      << first.output;
  auto bundle = open_bundle(*node, first.body);
  ASSERT_TRUE(bundle);
  EXPECT_EQ(bundle->node_id, node->id);
  EXPECT_EQ(bundle->labels.at("role"), "web");

  // Report and renew.
  auto c = node_client(a, *node);
  auto report = c.post_json("/v1/agent/report",
                            R"({"state":"ready","facts":{"peer_address":"127.0.0.1:8444"}})");
  ASSERT_TRUE(report);
  EXPECT_EQ(report->status, 204) << report->body;
  auto shown = a.lab_json({"node", "show", node->id});
  EXPECT_EQ(shown.at("state").as_string(), "ready");

  auto new_key = cr::EcPrivateKey::generate().value();
  json::object renew{{"csr", cr::make_csr(new_key, node->id).value()}};
  auto renewed = c.post_json("/v1/agent/renew", shared::json::to_string(renew));
  ASSERT_TRUE(renewed);
  ASSERT_EQ(renewed->status, 200) << renewed->body;
  auto o = shared::json::parse_object(renewed->body);
  ASSERT_TRUE(o);
  auto new_cert = cr::Certificate::from_pem(std::string(o->at("certificate").as_string()));
  ASSERT_TRUE(new_cert);
  EXPECT_EQ(new_cert->public_key_der(), new_key.public_key_der());
  EXPECT_NE(new_cert->serial(), cert->serial());
}

TEST(CoordinatorAgent, MutualTlsIsRefusedWithoutAValidCertificate) {
  Appliance a;
  auto node = join(a, a.create_token("role=web"), "web-1");
  auto other = join(a, a.create_token("role=web"), "web-2");
  ASSERT_TRUE(node && other);
  const std::vector<std::pair<std::string, std::string>> agent_routes = {
      {"GET", "/v1/agent/bundle?since=0&wait=1"},
      {"POST", "/v1/agent/renew"},
      {"POST", "/v1/agent/report"},
  };
  const std::string body = R"({"state":"ready"})";

  // No certificate: 401.
  for (const auto& [method, path] : agent_routes) {
    auto r =
        a.curl({"-X", method, "-H", "Content-Type: application/json", "--data-binary", body}, path);
    EXPECT_EQ(r.status, 401) << method << " " << path << " " << r.body;
  }

  // A certificate for the same node id from another CA: 403, nothing else said.
  TestPki foreign("lab coordinator CA");
  auto foreign_key = cr::EcPrivateKey::generate().value();
  auto foreign_cert = foreign.issue(foreign_key, node->id, cr::CertUsage::client);
  auto [fcrt, fkey] = write_client_pem(a, "foreign", foreign_cert.pem(), foreign_key.to_pem());
  for (const auto& [method, path] : agent_routes) {
    auto r = a.curl({"-X", method, "-H", "Content-Type: application/json", "--data-binary", body,
                     "--cert", fcrt.string(), "--key", fkey.string()},
                    path);
    EXPECT_EQ(r.status, 403) << method << " " << path;
    EXPECT_EQ(r.body, R"({"error":"forbidden","code":"forbidden"})");
  }

  // A node certificate is no operator credential.
  auto [crt, key] = write_client_pem(a, "node", node->certificate_pem, node->key.to_pem());
  EXPECT_EQ(a.curl({"--cert", crt.string(), "--key", key.string()}, "/v1/nodes").status, 401);

  // Revoked: its own certificate is refused on every agent route; the other node still works.
  EXPECT_EQ(a.lab({"node", "revoke", node->id}).exit_code, 0);
  for (const auto& [method, path] : agent_routes) {
    auto r = a.curl({"-X", method, "-H", "Content-Type: application/json", "--data-binary", body,
                     "--cert", crt.string(), "--key", key.string()},
                    path);
    EXPECT_EQ(r.status, 403) << method << " " << path;
    EXPECT_EQ(r.body, R"({"error":"forbidden","code":"forbidden"})");
  }
  auto ok = node_client(a, *other).get("/v1/agent/bundle?since=0");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  // The surviving node learns the revoked serial from its bundle.
  auto b = open_bundle(*other, ok->body);
  ASSERT_TRUE(b);
  const auto serial = cr::Certificate::from_pem(node->certificate_pem).value().serial();
  EXPECT_NE(std::find(b->revoked_serials.begin(), b->revoked_serials.end(), serial),
            b->revoked_serials.end());
}

TEST(CoordinatorAgent, LongPollReturnsWithinMillisecondsOfAChangeAnd204AfterWait) {
  Appliance a;
  auto node = join(a, a.create_token("role=web"), "web-1");
  ASSERT_TRUE(node);
  auto c = node_client(a, *node);
  const std::int64_t rev = first_bundle_revision(c);
  ASSERT_GT(rev, 0);

  // Nothing changes: 204 once `wait` passes, and not much later.
  const auto t0 = Clock::now();
  auto idle = c.get("/v1/agent/bundle?since=" + std::to_string(rev) + "&wait=1");
  const auto idle_for = Clock::now() - t0;
  ASSERT_TRUE(idle);
  EXPECT_EQ(idle->status, 204);
  EXPECT_TRUE(idle->body.empty());
  EXPECT_GE(idle_for, 900ms);
  EXPECT_LT(idle_for, 3s);

  // A label change wakes a parked poll at once.
  auto operator_client = a.operator_client();
  auto parked = [&] {
    auto m = operator_client.get("/metrics");
    return m && contains(m->body, "lab_api_long_polls_parked 1\n");
  };
  auto poll = std::async(std::launch::async, [&] {
    auto client = node_client(a, *node);
    auto r = client.get("/v1/agent/bundle?since=" + std::to_string(rev) + "&wait=30");
    return std::pair{std::move(r), Clock::now()};
  });
  ASSERT_TRUE(wait_until(parked, 10s));
  auto patch = operator_client.request("PATCH", "/v1/nodes/" + node->id + "/labels",
                                       R"({"set":{"tier":"front"}})", "application/json");
  const auto acknowledged = Clock::now();
  ASSERT_TRUE(patch);
  ASSERT_EQ(patch->status, 200) << patch->body;
  ASSERT_EQ(poll.wait_for(5s), std::future_status::ready);
  auto [woken, at] = poll.get();
  ASSERT_TRUE(woken);
  EXPECT_EQ(woken->status, 200);
  EXPECT_LT(at - acknowledged, 100ms);
  EXPECT_GT(revision_of(*woken), rev);
  auto b = open_bundle(*node, woken->body);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->labels.at("tier"), "front");

  // A change that does not touch this node's view leaves its poll parked.
  auto other = join(a, a.create_token("role=db"), "db-1");
  ASSERT_TRUE(other);
  const auto now_rev = revision_of(*woken);
  auto quiet = c.get("/v1/agent/bundle?since=" + std::to_string(now_rev) + "&wait=1");
  ASSERT_TRUE(quiet);
  EXPECT_EQ(quiet->status, 204);

  // Bad parameters are 400, not a parked poll.
  auto bad = c.get("/v1/agent/bundle?since=abc");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);

  // SIGTERM answers parked polls so the appliance stops promptly.
  auto late = std::async(std::launch::async, [&] {
    auto client = node_client(a, *node);
    return client.get("/v1/agent/bundle?since=" + std::to_string(now_rev) + "&wait=50");
  });
  ASSERT_TRUE(wait_until(parked, 10s));
  const auto stop_at = Clock::now();
  EXPECT_EQ(a.stop(), 0);
  EXPECT_LT(Clock::now() - stop_at, 5s);
  ASSERT_EQ(late.wait_for(5s), std::future_status::ready);
  auto answered = late.get();
  ASSERT_TRUE(answered);
  EXPECT_EQ(answered->status, 204);
}

// The parked-poll gauge and one outcome counter from /metrics.
struct PollFigures {
  long parked = -1;
  long outcome = -1;
};
PollFigures poll_figures(shared::http::Client& op, std::string_view outcome) {
  PollFigures f;
  auto m = op.get("/metrics");
  if (!m || m->status != 200)
    return f;
  auto value = [&](std::string_view prefix) -> long {
    const auto at = m->body.find(prefix);
    return at == std::string::npos ? -1 : std::atol(m->body.c_str() + at + prefix.size());
  };
  f.parked = value("\nlab_api_long_polls_parked ");
  f.outcome = value("\nlab_api_long_polls_total{outcome=\"" + std::string(outcome) + "\"} ");
  return f;
}

TEST(CoordinatorAgent, AParkedLongPollOfANodeRevokedMeanwhileIsRefusedAtOnce) {
  Appliance a;
  auto node = join(a, a.create_token("role=web"), "web-1");
  ASSERT_TRUE(node);
  auto c = node_client(a, *node);
  const std::int64_t rev = first_bundle_revision(c);
  ASSERT_GT(rev, 0);
  auto op = a.operator_client();

  auto poll = std::async(std::launch::async, [&] {
    auto client = node_client(a, *node);
    auto r = client.get("/v1/agent/bundle?since=" + std::to_string(rev) + "&wait=50");
    return std::pair{std::move(r), Clock::now()};
  });
  ASSERT_TRUE(wait_until([&] { return poll_figures(op, "revoked").parked == 1; }, 10s));
  ASSERT_EQ(a.lab({"node", "revoke", node->id}).exit_code, 0);
  const auto revoked_at = Clock::now();
  // Not the 204 the wait would end with 50 s later: the refusal every later request gets.
  ASSERT_EQ(poll.wait_for(10s), std::future_status::ready);
  auto [answer, at] = poll.get();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 403);
  EXPECT_EQ(answer->body, R"({"error":"forbidden","code":"forbidden"})");
  EXPECT_LT(at - revoked_at, 5s);
  const auto figures = poll_figures(op, "revoked");
  EXPECT_EQ(figures.parked, 0);
  EXPECT_EQ(figures.outcome, 1);
}

TEST(CoordinatorAgent, AClientThatHangsUpFreesItsParkedLongPoll) {
  Appliance a;
  auto node = join(a, a.create_token("role=web"), "web-1");
  ASSERT_TRUE(node);
  auto c = node_client(a, *node);
  const std::int64_t rev = first_bundle_revision(c);
  ASSERT_GT(rev, 0);
  auto op = a.operator_client();
  auto [crt, key] = write_client_pem(a, "web-1", node->certificate_pem, node->key.to_pem());

  // curl gives up after 1 s of a 50 s wait and exits: its connection closes with the poll
  // parked. The slot is freed then, not when the wait would have ended.
  const auto t0 = Clock::now();
  auto gone = a.curl({"--cert", crt.string(), "--key", key.string(), "--max-time", "1"},
                     "/v1/agent/bundle?since=" + std::to_string(rev) + "&wait=50");
  EXPECT_EQ(gone.status, 0) << gone.output;
  EXPECT_TRUE(wait_until(
      [&] {
        const auto f = poll_figures(op, "hangup");
        return f.parked == 0 && f.outcome == 1;
      },
      10s));
  EXPECT_LT(Clock::now() - t0, 15s);

  // The node's next poll is served as usual, and a change still wakes it.
  auto poll = std::async(std::launch::async, [&] {
    auto client = node_client(a, *node);
    return client.get("/v1/agent/bundle?since=" + std::to_string(rev) + "&wait=30");
  });
  ASSERT_TRUE(wait_until([&] { return poll_figures(op, "hangup").parked == 1; }, 10s));
  ASSERT_EQ(a.lab({"node", "label", node->id, "tier=front"}).exit_code, 0);
  ASSERT_EQ(poll.wait_for(10s), std::future_status::ready);
  auto woken = poll.get();
  ASSERT_TRUE(woken);
  EXPECT_EQ(woken->status, 200);
  EXPECT_GT(revision_of(*woken), rev);
  EXPECT_EQ(poll_figures(op, "hangup").outcome, 1);
}

TEST(CoordinatorAgent, ANonEntitledNodeNeverReceivesASecret) {
  Appliance a;
  auto db = join(a, a.create_token("role=db"), "db-1");
  auto web = join(a, a.create_token("role=web"), "web-1");
  ASSERT_TRUE(db && web);
  const std::string value = "the-database-password-4f9a2c";
  const auto file = a.dir().write("secret", value);
  ASSERT_EQ(
      a.lab({"secret", "set", "dbpass", "--from-file", file.string(), "--entitlement", "role=db"})
          .exit_code,
      0);

  auto fetch = [&](const JoinedNode& n) {
    auto r = node_client(a, n).get("/v1/agent/bundle?since=0");
    EXPECT_TRUE(r && r->status == 200);
    return r ? r->body : std::string();
  };
  const std::string db_bytes = fetch(*db);
  const std::string web_bytes = fetch(*web);

  // Neither carries the value in clear; the entitled one can open its box.
  EXPECT_FALSE(contains(db_bytes, value));
  EXPECT_FALSE(contains(web_bytes, value));
  auto db_bundle = open_bundle(*db, db_bytes);
  auto web_bundle = open_bundle(*web, web_bytes);
  ASSERT_TRUE(db_bundle && web_bundle);
  EXPECT_TRUE(web_bundle->secrets.empty());
  EXPECT_FALSE(contains(web_bytes, "dbpass"));
  ASSERT_EQ(db_bundle->secrets.size(), 1U);
  const auto& s = db_bundle->secrets[0];
  EXPECT_EQ(s.name, "dbpass");
  auto sealed = cr::base64url_decode(s.sealed);
  ASSERT_TRUE(sealed);
  const auto aad = shared::protocol::sealed_secret_aad(db->id, s.name, s.version);
  auto opened = cr::open(db->sealing, *sealed, cr::as_bytes(aad));
  ASSERT_TRUE(opened);
  EXPECT_EQ(std::string(opened->begin(), opened->end()), value);
  // The other node's key cannot open the entitled node's box.
  EXPECT_FALSE(cr::open(web->sealing, *sealed, cr::as_bytes(aad)));

  // Relabelling the web node into the entitlement delivers it; out again removes it.
  ASSERT_EQ(a.lab({"node", "label", web->id, "role=db", "--overwrite"}).exit_code, 0);
  auto granted = open_bundle(*web, fetch(*web));
  ASSERT_TRUE(granted);
  ASSERT_EQ(granted->secrets.size(), 1U);
  ASSERT_EQ(a.lab({"node", "label", web->id, "role=web", "--overwrite"}).exit_code, 0);
  const auto removed_bytes = fetch(*web);
  auto removed = open_bundle(*web, removed_bytes);
  ASSERT_TRUE(removed);
  EXPECT_TRUE(removed->secrets.empty());
  EXPECT_FALSE(contains(removed_bytes, value));
}

TEST(CoordinatorAgent, FiftyConcurrentJoinsWithOneTokenExactlyOneSucceeds) {
  // 49 refusals from one address would be answered 429 past the default budget.
  Appliance a({"coordinator.refusal_burst=100"});
  const auto token = a.create_token("role=web");
  constexpr int kJoins = 50;
  std::vector<JoinMaterial> requests;
  requests.reserve(kJoins);
  for (int i = 0; i < kJoins; ++i)
    requests.push_back(make_join_request(token, "racer-" + std::to_string(i)));

  std::atomic<int> ready{0};
  std::vector<std::future<std::pair<long, std::string>>> results;
  results.reserve(kJoins);
  for (int i = 0; i < kJoins; ++i) {
    results.push_back(std::async(std::launch::async, [&, i] {
      auto client = a.anonymous_client();
      ready.fetch_add(1);
      while (ready.load() < kJoins)
        std::this_thread::yield();
      auto r = client.post_json("/v1/join", requests[static_cast<std::size_t>(i)].body);
      return r ? std::pair{r->status, r->body} : std::pair{0L, r.error().message()};
    }));
  }
  int ok = 0;
  int refused = 0;
  for (auto& f : results) {
    auto [status, body] = f.get();
    if (status == 200) {
      ++ok;
    } else {
      EXPECT_EQ(status, 403) << body;
      EXPECT_EQ(body, R"({"error":"invalid token","code":"invalid_token"})");
      ++refused;
    }
  }
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(refused, kJoins - 1);
  EXPECT_EQ(a.lab_json({"node", "list"}).as_array().size(), 1U);
  EXPECT_EQ(a.lab({"audit", "verify"}).exit_code, 0);
}

}  // namespace
}  // namespace lab::tests::coordinator
