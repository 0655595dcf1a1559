#include "tests/unit/bootstrap/coordinator/fixture.hpp"

#include <sqlite3.h>

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
  // Tampering as someone with the database file would: a second connection, the sqlite3 C API.
  void tamper(const std::string& sql) {
    sqlite3* db = nullptr;
    const auto path = (dir_.path() / "data" / "coordinator.db").string();
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
  EXPECT_EQ(check.reason, "row 5 missing");
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
