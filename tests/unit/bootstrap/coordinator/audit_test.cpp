#include "bootstrap/audit/chain.hpp"
#include "tests/support/audit_forgery.hpp"
#include "tests/unit/bootstrap/coordinator/fixture.hpp"

#include <sqlite3.h>

#include <filesystem>

namespace lab::bootstrap::coordinator::testing {
namespace {

class AuditTest : public CoordinatorTest {
 protected:
  void SetUp() override {
    CoordinatorTest::SetUp();
    join("n1", {{"role", "web"}});
    ASSERT_TRUE(c().set_group({"web", "role=web", {}, {}}, operator_));
    ASSERT_TRUE(c().set_secret("s", "value", std::string("role=web"), operator_));
    ASSERT_TRUE(c().label_node("n1", {{"x", "1"}}, {}, operator_));
  }
  [[nodiscard]] std::filesystem::path db_path() const {
    return dir_.path() / "data" / "coordinator.db";
  }
  // Tampering as someone with the database file would: a second connection, the sqlite3 C API.
  void tamper(const std::string& sql) {
    sqlite3* db = nullptr;
    const auto path = db_path().string();
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
    sqlite3_free(err);
    sqlite3_close(db);
  }
};

TEST_F(AuditTest, EveryChangeIsRecordedAndTheChainVerifies) {
  auto events = c().audit_events(0, 100).value();
  std::vector<std::string> actions;
  for (const auto& e : events)
    actions.push_back(e.action);
  EXPECT_EQ(actions, (std::vector<std::string>{"token.create", "join", "group.set", "secret.set",
                                               "node.label"}));
  EXPECT_EQ(events[0].seq, 1);
  EXPECT_EQ(events[0].actor, "operator");
  EXPECT_EQ(events[0].address, "127.0.0.1");
  EXPECT_EQ(events[3].subject, "s");
  EXPECT_FALSE(events[3].detail.contains("value"));
  EXPECT_EQ(events[4].hash.size(), 64U);
  EXPECT_EQ(c().audit_events(3, 1).value().at(0).seq, 4);

  auto check = c().verify_audit().value();
  EXPECT_TRUE(check.ok) << check.reason;
  EXPECT_EQ(check.rows, 5);
  EXPECT_EQ(check.first_bad_seq, 0);
  reopen();
  EXPECT_TRUE(c().verify_audit().value().ok);
}

TEST_F(AuditTest, UpdatedRowIsDetected) {
  tamper("UPDATE audit SET actor = 'someone-else' WHERE seq = 3");
  auto check = c().verify_audit().value();
  EXPECT_FALSE(check.ok);
  EXPECT_EQ(check.first_bad_seq, 3);
  EXPECT_EQ(check.reason, "row 3 modified");
}

TEST_F(AuditTest, DeletedRowIsDetected) {
  tamper("DELETE FROM audit WHERE seq = 2");
  auto check = c().verify_audit().value();
  EXPECT_FALSE(check.ok);
  EXPECT_EQ(check.first_bad_seq, 2);
  EXPECT_EQ(check.reason, "row 2 missing");
}

TEST_F(AuditTest, DeletedLastRowIsDetected) {
  tamper("DELETE FROM audit WHERE seq = 5");
  auto check = c().verify_audit().value();
  EXPECT_FALSE(check.ok);
  EXPECT_EQ(check.first_bad_seq, 5);
  EXPECT_EQ(check.reason, "row 5 missing: the signed head names row 5, the chain ends at row 4");
}

TEST_F(AuditTest, EveryAppendSignsTheHead) {
  const auto head = c().audit_head().value();
  EXPECT_EQ(head.seq, 5);
  EXPECT_EQ(head.hash, c().audit_events(4, 1).value().at(0).hash);
  EXPECT_EQ(
      head.at,
      std::chrono::duration_cast<std::chrono::seconds>(clock_.now().time_since_epoch()).count());
  const auto key =
      cr::Ed25519PublicKey::from_raw(cr::base64url_decode(c().bundle_public_key()).value()).value();
  EXPECT_TRUE(audit::head_signature_ok(head, key));
  ASSERT_TRUE(c().label_node("n1", {{"y", "1"}}, {}, operator_));
  EXPECT_EQ(c().audit_head().value().seq, 6);
  EXPECT_TRUE(audit::head_signature_ok(c().audit_head().value(), key));
}

// The attack the signed head is for: change a row, then recompute every hash and the head with
// the chain's own algorithm. The chain holds together again; only the appliance's key can tell.
TEST_F(AuditTest, RewrittenAndReChainedLogFailsVerification) {
  tests::rewrite_audit(db_path(), R"(UPDATE audit SET detail = '{"x":"2"}' WHERE seq = 5)");
  auto check = c().verify_audit().value();
  EXPECT_FALSE(check.ok);
  EXPECT_EQ(check.reason, "the signed head (row 5) does not verify with the appliance's key");
  // Neither a restart nor the next change signs the rewritten log.
  reopen();
  ASSERT_TRUE(c().label_node("n1", {{"y", "1"}}, {}, operator_));
  check = c().verify_audit().value();
  EXPECT_FALSE(check.ok);
  EXPECT_EQ(check.reason, "the signed head (row 6) does not verify with the appliance's key");
}

TEST_F(AuditTest, ReChainedLogUnderTheOldSignedHeadFailsVerification) {
  const std::string signed_hash = c().audit_events(4, 1).value().at(0).hash;
  tests::rewrite_audit(db_path(), "UPDATE audit SET actor = 'someone-else' WHERE seq = 2");
  tamper("UPDATE meta SET value = '" + signed_hash + "' WHERE key = 'audit_head_hash'");
  auto check = c().verify_audit().value();
  EXPECT_FALSE(check.ok);
  EXPECT_EQ(check.first_bad_seq, 5);
  EXPECT_EQ(check.reason, "row 5 does not match the signed head");
}

TEST_F(AuditTest, TruncatedAndReChainedLogFailsVerification) {
  tests::rewrite_audit(db_path(), "DELETE FROM audit WHERE seq > 3");
  auto check = c().verify_audit().value();
  EXPECT_FALSE(check.ok);
  EXPECT_EQ(check.reason, "the signed head (row 3) does not verify with the appliance's key");
}

// The signature cannot be forged, but it can be deleted; the coordinator then must not sign
// whatever head it finds as if the log were new.
TEST_F(AuditTest, RemovedSignatureIsReportedAndNeverRestored) {
  tamper("DELETE FROM meta WHERE key IN ('audit_head_at', 'audit_head_signature')");
  EXPECT_EQ(c().verify_audit().value().reason, "the head (row 5) is not signed");
  reopen();
  ASSERT_TRUE(c().label_node("n1", {{"y", "1"}}, {}, operator_));
  EXPECT_EQ(c().verify_audit().value().reason, "the head (row 6) is not signed");
}

TEST_F(AuditTest, AWipedLogIsNotSignedAfresh) {
  tamper("DELETE FROM audit; DELETE FROM meta WHERE key LIKE 'audit_head_%'");
  reopen();
  auto check = c().verify_audit().value();
  EXPECT_FALSE(check.ok);
  EXPECT_EQ(check.reason, "the head (row 0) is not signed");
}

// A database from a version that did not sign: its head is signed at the first start, once,
// and a row says how much of the log predates signing.
TEST_F(AuditTest, AnUnsignedLogIsSignedOnceAtUpgrade) {
  tamper("DELETE FROM meta WHERE key IN ('audit_head_at', 'audit_head_signature')");
  std::filesystem::remove(dir_.path() / "data" / "audit.signed");
  reopen();
  auto check = c().verify_audit().value();
  EXPECT_TRUE(check.ok) << check.reason;
  EXPECT_EQ(check.rows, 6);
  auto events = c().audit_events(5, 10).value();
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].action, "audit.sign");
  EXPECT_EQ(events[0].actor, "system");
  EXPECT_EQ(events[0].detail.at("unsigned_rows").as_int64(), 5);
  EXPECT_TRUE(std::filesystem::exists(dir_.path() / "data" / "audit.signed"));
  reopen();
  EXPECT_TRUE(c().audit_events(6, 10).value().empty());
  EXPECT_TRUE(c().verify_audit().value().ok);
}

TEST_F(CoordinatorTest, ANewLogStartsWithASignedEmptyHead) {
  const auto head = c().audit_head().value();
  EXPECT_EQ(head.seq, 0);
  EXPECT_EQ(head.hash, std::string(64, '0'));
  EXPECT_FALSE(head.signature.empty());
  EXPECT_TRUE(c().audit_events(0, 10).value().empty());
  EXPECT_TRUE(std::filesystem::exists(dir_.path() / "data" / "audit.signed"));
  auto check = c().verify_audit().value();
  EXPECT_TRUE(check.ok) << check.reason;
  EXPECT_EQ(check.rows, 0);
}

TEST_F(AuditTest, RefusedJoinIsRecorded) {
  Agent a;
  EXPECT_FALSE(
      c().join(a.request(proto::make_token().value().to_string(), "x"), {"agent", "192.0.2.7"}));
  c().maintain();  // refusals are written in batches
  auto events = c().audit_events(5, 10).value();
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].action, "join.refused");
  EXPECT_EQ(events[0].address, "192.0.2.7");
  EXPECT_EQ(events[0].detail.at("reason").as_string(), "unknown token");
  EXPECT_TRUE(c().verify_audit().value().ok);
}

}  // namespace
}  // namespace lab::bootstrap::coordinator::testing
