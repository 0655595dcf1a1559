#include "shared/protocol/protocol.hpp"

#include "shared/crypto/encoding.hpp"

#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

namespace {

using namespace lab::shared::protocol;

TEST(Token, FreshTokensParseBackAndDiffer) {
  auto a = make_token().value();
  auto b = make_token().value();
  EXPECT_NE(a.to_string(), b.to_string());
  EXPECT_EQ(a.id.size(), 16u);
  EXPECT_EQ(a.secret.size(), 43u);
  auto parsed = parse_token(a.to_string());
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->id, a.id);
  EXPECT_EQ(parsed->secret, a.secret);
}

TEST(Token, MalformedTokensAreRefused) {
  for (const char* bad : {"", "abc", "zz.x", "0011223344556677.short",
                          "00112233445566.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}) {
    auto r = parse_token(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_TRUE(r.error() == ProtocolError::bad_token);
  }
}

TEST(JoinString, RoundTrips) {
  JoinString js{"https://10.0.0.1:8443", make_token().value(), "sha256:" + std::string(43, 'A')};
  const std::string text = format_join_string(js);
  EXPECT_EQ(text.rfind("lab1:", 0), 0u);
  auto back = parse_join_string(text + "\n");  // pasted with a newline
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->url, js.url);
  EXPECT_EQ(back->token.to_string(), js.token.to_string());
  EXPECT_EQ(back->ca_pin, js.ca_pin);
}

TEST(JoinString, DamageIsReportedWithAHint) {
  JoinString js{"https://h:1", make_token().value(), "sha256:" + std::string(43, 'A')};
  const std::string text = format_join_string(js);
  for (const std::string& bad :
       {std::string("nonsense"), text.substr(0, text.size() / 2), std::string("lab1:!!!"),
        format_join_string({"http://h:1", js.token, js.ca_pin}),
        format_join_string({"https://h:1", js.token, "md5:x"})}) {
    auto r = parse_join_string(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_TRUE(r.error() == ProtocolError::bad_join_string);
    EXPECT_NE(r.error().detail().find("lab token create"), std::string::npos);
  }
}

TEST(Join, MessagesRoundTripAndMissingFieldsAreNamed) {
  JoinRequest req{"t.s", "csr", "key", "host", "0.1", {{"cpu_count", 4}}, std::nullopt};
  auto back = join_request_from_json(to_json(req));
  ASSERT_TRUE(back);
  EXPECT_FALSE(back->proof);
  EXPECT_EQ(back->csr_pem, "csr");
  req.proof = KeyProof{"-----BEGIN CERTIFICATE-----", "c2ln"};
  auto proved = join_request_from_json(to_json(req));
  ASSERT_TRUE(proved);
  ASSERT_TRUE(proved->proof);
  EXPECT_EQ(proved->proof->certificate_pem, "-----BEGIN CERTIFICATE-----");
  EXPECT_EQ(proved->proof->signature, "c2ln");
  auto with_bad_proof = to_json(req);
  with_bad_proof["proof"] = "not an object";
  auto bad_proof = join_request_from_json(with_bad_proof);
  ASSERT_FALSE(bad_proof);
  EXPECT_NE(bad_proof.error().detail().find("proof"), std::string::npos);
  // The proof binds the CSR: another CSR is another message.
  EXPECT_NE(key_proof_message("join", "id", "csr-a"), key_proof_message("join", "id", "csr-b"));
  EXPECT_NE(key_proof_message("join", "id", "csr"), key_proof_message("renew", "id", "csr"));
  EXPECT_EQ(back->facts.at("cpu_count").as_int64(), 4);
  auto o = to_json(req);
  o.erase("csr");
  auto missing = join_request_from_json(o);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().detail(), "join request: field 'csr' is missing");

  JoinResponse resp{"n1", "node-1", "cert", "ca", "key", "enrolled"};
  EXPECT_EQ(join_response_from_json(to_json(resp)).value().node_id, "n1");
}

TEST(Bundle, SerialisationIsCanonicalAndRoundTrips) {
  Bundle b;
  b.node_id = "n1";
  b.name = "node-1";
  b.revision = 42;
  b.issued_at = 1700000000;
  b.state = "enrolled";
  b.labels = {{"role", "web"}, {"env", "prod"}};
  b.groups = {"web"};
  b.secrets = {{"db", 40, "c2VhbGVk"}};
  b.revoked_serials = {"abc"};
  b.peers = {{"n2", "10.0.0.2:8444"}};
  const std::string text = serialize(b);
  EXPECT_EQ(
      text,
      R"({"node_id":"n1","name":"node-1","revision":42,"issued_at":1700000000,"state":"enrolled",)"
      R"("labels":{"env":"prod","role":"web"},"groups":["web"],"secrets":[{"name":"db","version":40,)"
      R"("sealed":"c2VhbGVk"}],"revoked_serials":["abc"],"peers":[{"node_id":"n2","address":"10.0.0.2:8444"}]})");
  auto back = parse_bundle(text);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(serialize(*back), text);
}

TEST(Bundle, BadBundlesNameTheProblem) {
  EXPECT_TRUE(parse_bundle("[]").error() == ProtocolError::bad_message);
  auto r = parse_bundle(R"({"node_id":"n1"})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().detail(), "bundle: field 'name' is missing");
}

TEST(Bundle, GossipPartnersAreOptionalAndRoundTrip) {
  Bundle b;
  b.node_id = "n1";
  b.name = "node-1";
  b.state = "enrolled";
  b.peers = {{"n2", "10.0.0.2:8444"}};
  const std::string without = serialize(b);
  EXPECT_EQ(without.find("gossip"), std::string::npos) << "older agents read the same bytes";
  b.gossip = {{"n5", "10.0.0.5:8444"}, {"n9", "[fd00::9]:8444"}};
  auto back = parse_bundle(serialize(b));
  ASSERT_TRUE(back) << back.error().message();
  ASSERT_EQ(back->gossip.size(), 2U);
  EXPECT_EQ(back->gossip[1].address, "[fd00::9]:8444");
  auto wrong = parse_bundle(R"({"node_id":"n1","name":"a","revision":1,"issued_at":1,)"
                            R"("state":"enrolled","labels":{},"groups":[],"secrets":[],)"
                            R"("revoked_serials":[],"peers":[],"gossip":{}})");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().detail(), "bundle: field 'gossip': expected an array");
}

TEST(Fleet, SerialisationIsCanonicalAndRoundTrips) {
  Fleet f;
  f.revision = 9;
  f.issued_at = 1700000000;
  f.revoked_serials = {"0a", "ff"};
  f.revoked_nodes = {"n3"};
  const std::string text = serialize(f);
  EXPECT_EQ(text, R"({"revision":9,"issued_at":1700000000,"revoked_serials":["0a","ff"],)"
                  R"("revoked_nodes":["n3"]})");
  auto back = parse_fleet(text);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(serialize(*back), text);
  auto bad = parse_fleet(R"({"revision":9,"issued_at":1,"revoked_serials":[1]})");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), ProtocolError::bad_message);
}

TEST(Kept, EnvelopesTravelAsBase64urlAndComeBackByteForByte) {
  Kept k;
  k.revision = 12;
  k.node_ids = {"n1", "n2"};
  k.envelopes = {{0x4c, 0x41, 0x42, 0x45, 0x00, 0xff}, {}};
  auto back = kept_from_json(to_json(k));
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->revision, 12);
  EXPECT_EQ(back->node_ids, k.node_ids);
  EXPECT_EQ(back->envelopes, k.envelopes);
  auto o = to_json(k);
  o["envelopes"] = boost::json::array{"not base64!"};
  auto bad = kept_from_json(o);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().detail(), "kept: an envelope is not base64url");
}

TEST(SealedSecret, AadBindsNodeNameAndVersion) {
  EXPECT_EQ(sealed_secret_aad("n1", "db", 7), "lab-secret-v1|n1|db|7");
  EXPECT_NE(sealed_secret_aad("n1", "db", 7), sealed_secret_aad("n2", "db", 7));
}

// A check as the bundle and the API carry it: round trip, defaults, and every bound named.
TEST(ProtocolChecks, RoundTripDefaultsAndBounds) {
  Check c;
  c.name = "disk";
  c.command = {"df", "-h", "/var lib"};
  auto back = check_from_json(check_to_json(c));
  ASSERT_TRUE(back) << back.error().detail();
  EXPECT_EQ(*back, c);
  EXPECT_EQ(back->user, "nobody");
  EXPECT_EQ(back->rise, 2);
  EXPECT_EQ(back->fall, 3);

  auto refused = [](boost::json::object o) {
    auto r = check_from_json(o);
    EXPECT_FALSE(r) << boost::json::serialize(o);
    return r ? std::string() : r.error().detail();
  };
  const boost::json::object base{{"name", "x"}, {"command", boost::json::array{"true"}}};
  auto with = [&](std::string_view k, boost::json::value v) {
    auto o = base;
    o[k] = std::move(v);
    return o;
  };
  EXPECT_NE(refused(with("user", "root")).find("never run as root"), std::string::npos);
  EXPECT_NE(refused(with("user", "Bad User")).find("not a user name"), std::string::npos);
  EXPECT_NE(refused(with("command", boost::json::array{})).find("command"), std::string::npos);
  EXPECT_NE(refused(with("kind", "ssh")).find("none of command, http, tcp"), std::string::npos);
  EXPECT_NE(refused(with("interval_seconds", 0)).find("interval_seconds"), std::string::npos);
  EXPECT_NE(refused(with("interval_seconds", 86401)).find("interval_seconds"), std::string::npos);
  EXPECT_NE(refused(with("timeout_seconds", 31)).find("timeout_seconds"), std::string::npos);
  EXPECT_NE(refused(with("rise", 11)).find("rise/fall"), std::string::npos);
  EXPECT_NE(refused(with("shell", "yes")).find("shell"), std::string::npos);
  auto shell = with("shell", true);
  shell["command"] = boost::json::array{"a", "b"};
  EXPECT_NE(refused(shell).find("one string"), std::string::npos);
  EXPECT_FALSE(refused(with("name", "a/b")).empty());
  const boost::json::object http{{"name", "h"}, {"kind", "http"}, {"url", "file:///etc/passwd"}};
  EXPECT_NE(refused(http).find("url"), std::string::npos);
  const boost::json::object tcp{{"name", "t"}, {"kind", "tcp"}, {"address", "db:0"}};
  EXPECT_NE(refused(tcp).find("address"), std::string::npos);
  EXPECT_TRUE(check_from_json({{"name", "t"}, {"kind", "tcp"}, {"address", "[fd00::1]:5432"}}));
}

TEST(ProtocolChecks, ResultsAreBoundedAndHealthIsOneWord) {
  CheckResult r{"nginx", "failing", 10, 20, 30, "HTTP 503", "busy"};
  auto back = check_result_from_json(check_result_to_json(r));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, r);
  auto big = check_result_to_json(r);
  big["output"] = std::string(kMaxCheckOutput + 1, 'x');
  EXPECT_FALSE(check_result_from_json(big));
  big = check_result_to_json(r);
  big["status"] = "sideways";
  EXPECT_FALSE(check_result_from_json(big));
  EXPECT_EQ(health_of({}), "none");
  CheckResult ok{"a", "passing", 0, 0, 0, "", ""};
  CheckResult pending{"b", "pending", 0, 0, 0, "", ""};
  EXPECT_EQ(health_of({ok}), "passing");
  EXPECT_EQ(health_of({ok, pending}), "pending");
  EXPECT_EQ(health_of({pending, r, ok}), "failing");
}

TEST(ProtocolChecks, ABundleCarriesItsChecksAndRefusesTooMany) {
  Bundle b;
  b.node_id = "n1";
  b.name = "web1";
  b.state = "ready";
  Check c;
  c.name = "web";
  c.kind = "http";
  c.url = "http://127.0.0.1/";
  c.expect_status = 204;
  b.checks = {c};
  auto back = parse_bundle(serialize(b));
  ASSERT_TRUE(back);
  ASSERT_EQ(back->checks.size(), 1U);
  EXPECT_EQ(back->checks[0], c);
  // Bundles of older coordinators have no checks at all.
  EXPECT_EQ(serialize(Bundle{}).find("checks"), std::string::npos);
  for (int i = 0; i < 65; ++i) {
    c.name = "c" + std::to_string(i);
    b.checks.push_back(c);
  }
  EXPECT_FALSE(parse_bundle(serialize(b)));
}

}  // namespace
