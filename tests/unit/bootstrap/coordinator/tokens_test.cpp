#include "shared/crypto/hash.hpp"
#include "tests/unit/bootstrap/coordinator/fixture.hpp"

#include <sqlite3.h>

#include <fstream>
#include <sstream>
#include <thread>

namespace lab::bootstrap::coordinator::testing {
namespace {

std::string last_refusal(Coordinator& c) {
  c.maintain();  // refusals are audited in batches (the fixture's window is 0 s)
  auto events = c.audit_events(0, 10000).value();
  for (auto it = events.rbegin(); it != events.rend(); ++it) {
    if (it->action == "join.refused")
      return std::string(it->detail.at("reason").as_string());
  }
  return {};
}

TEST_F(CoordinatorTest, CreatedTokenJoinStringCarriesUrlTokenAndPin) {
  TokenSpec spec;
  spec.labels = {{"role", "web"}};
  spec.description = "rack 4";
  auto t = c().create_token(spec, operator_);
  ASSERT_TRUE(t) << t.error().message();
  auto js = proto::parse_join_string(t->join_string);
  ASSERT_TRUE(js) << js.error().message();
  EXPECT_EQ(js->url, "https://127.0.0.1:8443");
  EXPECT_EQ(js->token.to_string(), t->token);
  EXPECT_EQ(js->ca_pin, c().ca_pin());
  EXPECT_EQ(t->info.state, "active");
  EXPECT_EQ(t->info.expires_at - t->info.created_at, 3600);

  auto list = c().list_tokens().value();
  ASSERT_EQ(list.size(), 1U);
  EXPECT_EQ(list[0].id, t->info.id);
  EXPECT_EQ(list[0].labels.at("role"), "web");
  EXPECT_EQ(list[0].description, "rack 4");
  EXPECT_EQ(list[0].state, "active");
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// The token row's secret column, read through a second connection as anyone with the file
/// could.
std::string stored_secret_column(const std::filesystem::path& db_path, const std::string& id) {
  sqlite3* db = nullptr;
  std::string out;
  EXPECT_EQ(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(
      sqlite3_prepare_v2(db, "SELECT secret_sha256 FROM tokens WHERE id = ?", -1, &st, nullptr),
      SQLITE_OK);
  sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st) == SQLITE_ROW) {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(st, 0));
    out.assign(p, static_cast<std::size_t>(sqlite3_column_bytes(st, 0)));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

TEST_F(CoordinatorTest, TokenSecretIsStoredAsItsSha256Only) {
  TokenSpec spec;
  auto t = c().create_token(spec, operator_).value();
  const auto parsed = proto::parse_token(t.token).value();
  const auto raw = cr::base64url_decode(parsed.secret).value();
  ASSERT_EQ(raw.size(), 32U);
  const std::string raw_secret(raw.begin(), raw.end());

  const auto data = dir_.path() / "data";
  const cr::Digest digest = cr::sha256(parsed.secret);
  EXPECT_EQ(stored_secret_column(data / "coordinator.db", parsed.id),
            std::string(digest.begin(), digest.end()));
  // Neither the text nor the raw secret is anywhere in the database or its WAL, while open
  // (the WAL holds the write) and after close (checkpointed into the db file).
  for (int pass = 0; pass < 2; ++pass) {
    for (const char* f : {"coordinator.db", "coordinator.db-wal"}) {
      const std::string bytes = slurp(data / f);
      EXPECT_EQ(bytes.find(parsed.secret), std::string::npos) << f << " pass " << pass;
      EXPECT_EQ(bytes.find(raw_secret), std::string::npos) << f << " pass " << pass;
    }
    coordinator_.reset();
  }
  // After a restart the stored hash still authenticates the token.
  reopen();
  Agent a;
  EXPECT_TRUE(c().join(a.request(t.token, "one"), {"agent", "10.0.0.5"}));
}

TEST_F(CoordinatorTest, TokenIsSingleUse) {
  const std::string t = token();
  Agent a;
  auto first = c().join(a.request(t, "one"), {"agent", "10.0.0.5"});
  ASSERT_TRUE(first) << first.error().message();
  Agent b;
  auto second = c().join(b.request(t, "two"), {"agent", "10.0.0.6"});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error(), CoordinatorError::token_used);
  EXPECT_EQ(last_refusal(c()), "token already used");
  auto list = c().list_tokens().value();
  EXPECT_EQ(list[0].state, "used");
  EXPECT_EQ(list[0].used_by, first->node_id);
}

TEST_F(CoordinatorTest, UnknownAndWrongSecretTokensAreRefused) {
  Agent a;
  auto made = proto::make_token().value();
  auto r = c().join(a.request(made.to_string(), "x"), {"agent", "10.0.0.5"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), CoordinatorError::token_unknown);

  const std::string t = token();
  auto parsed = proto::parse_token(t).value();
  parsed.secret = made.secret;  // right id, wrong secret
  r = c().join(a.request(parsed.to_string(), "x"), {"agent", "10.0.0.5"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), CoordinatorError::token_unknown);

  r = c().join(a.request("garbage", "x"), {"agent", "10.0.0.5"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), CoordinatorError::token_unknown);
  EXPECT_EQ(last_refusal(c()), "unknown token");
  // The real token still works: refusals do not consume it.
  EXPECT_TRUE(c().join(a.request(t, "x"), {"agent", "10.0.0.5"}));
}

TEST_F(CoordinatorTest, RevokedTokenIsRefused) {
  TokenSpec spec;
  auto t = c().create_token(spec, operator_).value();
  ASSERT_TRUE(c().revoke_token(t.info.id, operator_));
  Agent a;
  auto r = c().join(a.request(t.token, "x"), {"agent", "10.0.0.5"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), CoordinatorError::token_revoked);
  EXPECT_EQ(last_refusal(c()), "token revoked");
  EXPECT_EQ(c().list_tokens().value()[0].state, "revoked");
  EXPECT_EQ(c().revoke_token("0011223344556677", operator_).error(), CoordinatorError::not_found);
}

TEST_F(CoordinatorTest, ExpiredTokenIsRefusedByTheInjectedClock) {
  const std::string t = token({}, {}, std::chrono::seconds(60));
  clock_.advance(std::chrono::seconds(59));
  EXPECT_EQ(c().list_tokens().value()[0].state, "active");
  clock_.advance(std::chrono::seconds(1));
  EXPECT_EQ(c().list_tokens().value()[0].state, "expired");
  Agent a;
  auto r = c().join(a.request(t, "x"), {"agent", "10.0.0.5"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), CoordinatorError::token_expired);
  EXPECT_EQ(last_refusal(c()), "token expired");
}

TEST_F(CoordinatorTest, BoundTokenRefusesAnotherMacIpOrHost) {
  Agent a;
  const std::string by_mac = token({}, {"52:54:00:AA:BB:CC", "", ""});
  auto r = c().join(a.request(by_mac, "x", {"52:54:00:00:00:01"}), {"agent", "10.0.0.5"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), CoordinatorError::token_binding);
  EXPECT_EQ(last_refusal(c()), "token bound to another machine");
  EXPECT_TRUE(c().join(a.request(by_mac, "x", {"52:54:00:aa:bb:cc"}), {"agent", "10.0.0.5"}));

  const std::string by_ip = token({}, {"", "10.0.0.9", ""});
  r = c().join(a.request(by_ip, "y"), {"agent", "10.0.0.5"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), CoordinatorError::token_binding);
  EXPECT_NE(r.error().detail().find("10.0.0.9"), std::string::npos) << r.error().detail();
  EXPECT_TRUE(c().join(a.request(by_ip, "y"), {"agent", "10.0.0.9"}));

  const std::string by_host = token({}, {"", "", "db1"});
  r = c().join(a.request(by_host, "db2"), {"agent", "10.0.0.5"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), CoordinatorError::token_binding);
  EXPECT_EQ(last_refusal(c()), "token bound to another machine");
  EXPECT_TRUE(c().join(a.request(by_host, "db1"), {"agent", "10.0.0.5"}));
}

TEST_F(CoordinatorTest, BadTokenSpecsAreRefused) {
  TokenSpec spec;
  spec.ttl = std::chrono::seconds(0);
  EXPECT_EQ(c().create_token(spec, operator_).error(), CoordinatorError::invalid_argument);
  spec.ttl = std::chrono::hours(1);
  spec.kind = "other";
  EXPECT_EQ(c().create_token(spec, operator_).error(), CoordinatorError::invalid_argument);
  spec.kind = "join";
  spec.labels = {{"bad key!", "v"}};
  auto r = c().create_token(spec, operator_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), CoordinatorError::invalid_argument);
  EXPECT_NE(r.error().detail().find("bad key!"), std::string::npos) << r.error().detail();
}

TEST_F(CoordinatorTest, FiftyConcurrentJoinsWithOneTokenGiveExactlyOneNode) {
  const std::string t = token();
  constexpr int kThreads = 50;
  std::vector<Agent> agents(kThreads);
  std::vector<proto::JoinRequest> requests;
  requests.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i)
    requests.push_back(agents[i].request(t, "racer-" + std::to_string(i)));
  std::atomic<int> ok{0};
  std::atomic<int> used{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load())
        std::this_thread::yield();
      auto r = c().join(requests[i], {"agent", "10.0.0.5"});
      if (r)
        ++ok;
      else if (r.error() == CoordinatorError::token_used)
        ++used;
    });
  }
  go = true;
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(used.load(), kThreads - 1);
  EXPECT_EQ(c().list_nodes("").value().size(), 1U);
}

}  // namespace
}  // namespace lab::bootstrap::coordinator::testing
