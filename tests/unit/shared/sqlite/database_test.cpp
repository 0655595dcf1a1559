#include "shared/sqlite/database.hpp"

#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <array>
#include <fstream>

namespace {

using namespace lab::shared::sqlite;

constexpr Migration kMigrations[] = {
    {1, "CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB, n INTEGER);"},
    {2, "ALTER TABLE kv ADD COLUMN note TEXT;"},
};

class SqliteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = Database::open(dir_ / "test.db");
    ASSERT_TRUE(db) << db.error().message();
    db_.emplace(std::move(*db));
    auto v = migrate(*db_, kMigrations);
    ASSERT_TRUE(v) << v.error().message();
    ASSERT_EQ(*v, 2);
  }
  lab::tests::TempDir dir_;
  std::optional<Database> db_;
};

TEST_F(SqliteTest, OpensInWalWithSynchronousFull) {
  auto mode = db_->prepare("PRAGMA journal_mode");
  ASSERT_TRUE(mode);
  ASSERT_TRUE(mode->step().value());
  EXPECT_EQ(mode->text(0), "wal");
  auto sync = db_->prepare("PRAGMA synchronous");
  ASSERT_TRUE(sync->step().value());
  EXPECT_EQ(sync->int64(0), 2);  // FULL
  auto fk = db_->prepare("PRAGMA foreign_keys");
  ASSERT_TRUE(fk->step().value());
  EXPECT_EQ(fk->int64(0), 1);
}

TEST_F(SqliteTest, BindsAndReadsEveryType) {
  auto ins = db_->prepare("INSERT INTO kv(k, v, n, note) VALUES (?, ?, ?, ?)");
  ASSERT_TRUE(ins);
  const std::array<std::uint8_t, 4> blob{0, 1, 0xfe, 0};
  ASSERT_TRUE(ins->bind("a", Blob{blob}, std::int64_t{1} << 40, std::optional<std::string>{}));
  ASSERT_TRUE(ins->run());
  ASSERT_TRUE(ins->bind(std::string("b"), Blob{}, 7, std::string("note")));
  ASSERT_TRUE(ins->run());

  auto sel = db_->prepare("SELECT k, v, n, note FROM kv ORDER BY k");
  ASSERT_TRUE(sel);
  ASSERT_TRUE(sel->step().value());
  EXPECT_EQ(sel->text(0), "a");
  EXPECT_EQ(sel->blob(1), (std::vector<std::uint8_t>{0, 1, 0xfe, 0}));
  EXPECT_EQ(sel->int64(2), std::int64_t{1} << 40);
  EXPECT_FALSE(sel->optional_text(3).has_value());
  ASSERT_TRUE(sel->step().value());
  EXPECT_FALSE(sel->is_null(1));  // an empty blob stays a blob, not NULL
  EXPECT_TRUE(sel->blob(1).empty());
  EXPECT_EQ(sel->optional_text(3).value(), "note");
  EXPECT_FALSE(sel->step().value());
}

TEST_F(SqliteTest, ConstraintViolationHasItsOwnCode) {
  auto ins = db_->prepare("INSERT INTO kv(k) VALUES (?)");
  ASSERT_TRUE(ins->bind("dup"));
  ASSERT_TRUE(ins->run());
  ASSERT_TRUE(ins->bind("dup"));
  auto r = ins->run();
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error() == SqliteError::constraint);
  EXPECT_NE(r.error().detail().find("UNIQUE"), std::string::npos);
}

TEST_F(SqliteTest, PrepareErrorNamesTheSql) {
  auto r = db_->prepare("SELEKT 1");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error() == SqliteError::prepare_failed);
  EXPECT_NE(r.error().detail().find("SELEKT 1"), std::string::npos);
}

TEST_F(SqliteTest, TransactionRollsBackUnlessCommitted) {
  {
    auto tx = Transaction::begin(*db_);
    ASSERT_TRUE(tx);
    ASSERT_TRUE(db_->exec("INSERT INTO kv(k) VALUES ('gone')"));
  }
  {
    auto tx = Transaction::begin(*db_);
    ASSERT_TRUE(tx);
    ASSERT_TRUE(db_->exec("INSERT INTO kv(k) VALUES ('kept')"));
    ASSERT_TRUE(tx->commit());
    EXPECT_FALSE(tx->commit());  // a second commit is refused
  }
  auto sel = db_->prepare("SELECT group_concat(k) FROM kv");
  ASSERT_TRUE(sel->step().value());
  EXPECT_EQ(sel->text(0), "kept");
}

TEST_F(SqliteTest, CommittedDataIsVisibleToAnotherConnection) {
  ASSERT_TRUE(db_->exec("INSERT INTO kv(k, n) VALUES ('x', 42)"));
  auto other = Database::open(dir_ / "test.db");
  ASSERT_TRUE(other);
  auto sel = other->prepare("SELECT n FROM kv WHERE k = 'x'");
  ASSERT_TRUE(sel->step().value());
  EXPECT_EQ(sel->int64(0), 42);
}

TEST_F(SqliteTest, SecondWriterGetsBusyAfterTimeout) {
  auto other = Database::open(dir_ / "test.db", {.busy_timeout = std::chrono::milliseconds(50)});
  ASSERT_TRUE(other);
  auto tx = Transaction::begin(*db_);
  ASSERT_TRUE(tx);
  auto blocked = Transaction::begin(*other);
  ASSERT_FALSE(blocked);
  EXPECT_TRUE(blocked.error() == SqliteError::busy);
}

TEST_F(SqliteTest, MigrationsAreIdempotentAndRecorded) {
  auto v = migrate(*db_, kMigrations);
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 2);
  auto sel = db_->prepare("SELECT count(*) FROM schema_version");
  ASSERT_TRUE(sel->step().value());
  EXPECT_EQ(sel->int64(0), 2);
}

TEST_F(SqliteTest, NewerSchemaIsRefused) {
  auto v = migrate(*db_, std::span(kMigrations, 1));
  ASSERT_FALSE(v);
  EXPECT_TRUE(v.error() == SqliteError::schema_too_new);
}

TEST(SqliteMigrations, FailedMigrationRollsBackAndReportsItsNumber) {
  lab::tests::TempDir dir;
  auto db = Database::open(dir / "m.db");
  ASSERT_TRUE(db);
  const Migration bad[] = {{1, "CREATE TABLE a (x INTEGER);"},
                           {2, "CREATE TABLE b (y INTEGER); CREATE TABLE a (z INTEGER);"}};
  auto v = migrate(*db, bad);
  ASSERT_FALSE(v);
  EXPECT_TRUE(v.error() == SqliteError::migration_failed);
  EXPECT_NE(v.error().detail().find("migration 2"), std::string::npos);
  // Migration 1 stays applied, migration 2 left nothing behind.
  auto sel = db->prepare("SELECT count(*) FROM sqlite_master WHERE name = 'b'");
  ASSERT_TRUE(sel->step().value());
  EXPECT_EQ(sel->int64(0), 0);
  const Migration good[] = {{1, "CREATE TABLE a (x INTEGER);"}, {2, "CREATE TABLE b (y INTEGER);"}};
  EXPECT_EQ(migrate(*db, good).value(), 2);
}

TEST(SqliteMigrations, GapsInNumberingAreRefused) {
  lab::tests::TempDir dir;
  auto db = Database::open(dir / "g.db");
  const Migration gap[] = {{1, "SELECT 1;"}, {3, "SELECT 1;"}};
  auto v = migrate(*db, gap);
  ASSERT_FALSE(v);
  EXPECT_TRUE(v.error() == SqliteError::migration_failed);
}

TEST(SqliteOpen, GarbageFileIsRefusedWithItsPath) {
  lab::tests::TempDir dir;
  auto path = dir.write("junk.db", std::string(4096, 'x'));
  auto db = Database::open(path);
  ASSERT_FALSE(db);
  EXPECT_TRUE(db.error() == SqliteError::open_failed);
  EXPECT_NE(db.error().detail().find("junk.db"), std::string::npos);
}

TEST(SqliteOpen, MissingDirectoryIsRefused) {
  auto db = Database::open("/nonexistent-dir/x.db");
  ASSERT_FALSE(db);
  EXPECT_TRUE(db.error() == SqliteError::open_failed);
}

}  // namespace
