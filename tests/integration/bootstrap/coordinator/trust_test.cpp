// Enrolment and agent-route bounds through the real `lab serve` over mTLS: a renewal revokes the
// certificate it replaces once the agent uses the new one, a re-enrolment needs the node's key,
// an expired certificate renews by proof only within the grace, reports are rate-limited and
// their peer address must be an IP:port literal.
#include "shared/crypto/encoding.hpp"
#include "shared/json/json.hpp"
#include "shared/protocol/protocol.hpp"
#include "tests/integration/bootstrap/coordinator/appliance.hpp"

#include <boost/json/object.hpp>
#include <gtest/gtest.h>

namespace lab::tests::coordinator {
namespace {

namespace cr = shared::crypto;
namespace proto = shared::protocol;
namespace json = boost::json;

// A joined node that renewed: the same node with the new key and certificate.
JoinedNode renewed(const Appliance& a, const JoinedNode& node) {
  auto key = cr::EcPrivateKey::generate().value();
  auto r = node_client(a, node).post_json(
      "/v1/agent/renew",
      shared::json::to_string(json::object{{"csr", cr::make_csr(key, node.id).value()}}));
  EXPECT_TRUE(r && r->status == 200) << (r ? r->body : r.error().message());
  JoinedNode out{node.id, node.name, node.state, node.bundle_key, std::move(key), node.sealing, {}};
  if (r) {
    auto o = shared::json::parse_object(r->body).value();
    out.certificate_pem = std::string(o.at("certificate").as_string());
  }
  return out;
}

TEST(AgentTrust, ARenewalRevokesTheOldCertificateOnceTheNewOneIsUsed) {
  Appliance a;
  auto node = join(a, a.create_token("role=web"), "web-1");
  ASSERT_TRUE(node);
  const JoinedNode fresh = renewed(a, *node);
  // Until the agent has switched, the old certificate still works (a lost answer strands
  // nobody).
  EXPECT_EQ(node_client(a, *node).get("/v1/agent/bundle?since=0&wait=0")->status, 200);
  EXPECT_EQ(node_client(a, fresh).get("/v1/agent/bundle?since=0&wait=0")->status, 200);
  // Now it is refused, and every bundle lists it.
  auto old = node_client(a, *node).get("/v1/agent/bundle?since=0&wait=0");
  ASSERT_TRUE(old);
  EXPECT_EQ(old->status, 403);
  auto audit = a.lab({"audit", "list", "--output", "json", "--limit", "1000"});
  EXPECT_NE(audit.output.find("cert.superseded"), std::string::npos) << audit.output;
}

TEST(AgentTrust, ReenrolmentKeepsTheNodeOnlyWithAProofOfItsKey) {
  Appliance a;
  auto node = join(a, a.create_token("role=web"), "web-1");
  ASSERT_TRUE(node);
  // A fresh token and a proof made with the node's key: the same node, new keys.
  const std::string token = a.create_token();
  auto m = make_join_request(token, "web-1");
  auto request = proto::join_request_from_json(shared::json::parse_object(m.body).value()).value();
  const std::string message =
      proto::key_proof_message("join", proto::parse_token(token)->id, request.csr_pem);
  request.proof = proto::KeyProof{
      node->certificate_pem, cr::base64url_encode(node->key.sign(cr::as_bytes(message)).value())};
  auto r = post_join(a, shared::json::to_string(proto::to_json(request)));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto answer = proto::join_response_from_json(shared::json::parse_object(r->body).value()).value();
  EXPECT_EQ(answer.node_id, node->id);
  EXPECT_EQ(node_client(a, *node).get("/v1/agent/bundle?since=0&wait=0")->status, 403);

  // The same proof with someone else's key in the signature: refused, token kept.
  const std::string token2 = a.create_token();
  auto m2 = make_join_request(token2, "web-1");
  auto forged = proto::join_request_from_json(shared::json::parse_object(m2.body).value()).value();
  const std::string message2 =
      proto::key_proof_message("join", proto::parse_token(token2)->id, forged.csr_pem);
  forged.proof = proto::KeyProof{node->certificate_pem,
                                 cr::base64url_encode(m2.key.sign(cr::as_bytes(message2)).value())};
  auto refused = post_join(a, shared::json::to_string(proto::to_json(forged)));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 403) << refused->body;
  EXPECT_NE(refused->body.find("invalid_proof"), std::string::npos) << refused->body;
  forged.proof.reset();
  auto plain = post_join(a, shared::json::to_string(proto::to_json(forged)));
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->status, 200) << plain->body;  // a new node: the token was not spent
  EXPECT_NE(
      proto::join_response_from_json(shared::json::parse_object(plain->body).value())->node_id,
      node->id);
}

TEST(AgentTrust, AnExpiredCertificateRenewsByProofWithinTheGraceAndNotAfterIt) {
  // Certificates live 2 s here, and may be renewed up to 5 s after that.
  Appliance a({"coordinator.certificate_ttl=2s", "coordinator.renew_grace=5s"});
  auto early = join(a, a.create_token(), "web-1");
  auto late = join(a, a.create_token(), "web-2");
  ASSERT_TRUE(early && late);
  auto renew_body = [&](const JoinedNode& n, cr::EcPrivateKey& key) {
    proto::RenewRequest r{cr::make_csr(key, n.id).value(), std::nullopt};
    r.proof = proto::KeyProof{
        n.certificate_pem,
        cr::base64url_encode(
            n.key.sign(cr::as_bytes(proto::key_proof_message("renew", "", r.csr_pem))).value())};
    return shared::json::to_string(proto::to_json(r));
  };
  std::this_thread::sleep_for(std::chrono::seconds(3));  // expired, within the grace
  auto expired = node_client(a, *early).get("/v1/agent/bundle?since=0&wait=0");
  EXPECT_FALSE(expired && expired->status == 200);
  auto key = cr::EcPrivateKey::generate().value();
  auto r = a.anonymous_client().post_json("/v1/renew", renew_body(*early, key));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  JoinedNode back{
      early->id,
      early->name,
      early->state,
      early->bundle_key,
      std::move(key),
      early->sealing,
      std::string(shared::json::parse_object(r->body).value().at("certificate").as_string())};
  EXPECT_EQ(node_client(a, back).get("/v1/agent/bundle?since=0&wait=0")->status, 200);

  std::this_thread::sleep_for(std::chrono::seconds(5));  // web-2: past the grace
  auto key2 = cr::EcPrivateKey::generate().value();
  auto refused = a.anonymous_client().post_json("/v1/renew", renew_body(*late, key2));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 403) << refused->body;
  EXPECT_NE(refused->body.find("renew_grace_passed"), std::string::npos) << refused->body;
  EXPECT_NE(refused->body.find("rejoin"), std::string::npos) << refused->body;
}

TEST(AgentTrust, ReportsAreRateLimitedAndPeerAddressesMustBeIpLiterals) {
  Appliance a;
  auto node = join(a, a.create_token(), "web-1");
  ASSERT_TRUE(node);
  auto c = node_client(a, *node);
  for (const char* bad : {"evil.example:8444", "10.0.0.7", "10.0.0.7:0", "10.0.0.7:8444x"}) {
    auto r = c.post_json("/v1/agent/report",
                         shared::json::to_string(json::object{
                             {"state", "ready"}, {"facts", json::object{{"peer_address", bad}}}}));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << bad << " " << r->body;
  }
  int accepted = 0;
  int limited = 0;
  for (int i = 0; i < 20; ++i) {
    auto r = c.post_json("/v1/agent/report",
                         R"({"state":"ready","facts":{"peer_address":"127.0.0.1:8444"}})");
    ASSERT_TRUE(r);
    accepted += r->status == 204 ? 1 : 0;
    limited += r->status == 429 ? 1 : 0;
  }
  // The burst (6), maybe one more refilled while a slow runner sends them.
  EXPECT_GE(accepted, 6);
  EXPECT_LE(accepted, 8);
  EXPECT_EQ(accepted + limited, 20);
}

}  // namespace
}  // namespace lab::tests::coordinator
