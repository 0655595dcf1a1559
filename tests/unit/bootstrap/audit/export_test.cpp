// Exports of a real coordinator's audit trail, read back through the API's JSON shapes, checked
// on their own and against the live log after it was rewritten or rolled back.
#include "bootstrap/audit/export.hpp"

#include "bootstrap/api/codec.hpp"
#include "shared/json/json.hpp"
#include "tests/support/audit_forgery.hpp"
#include "tests/unit/bootstrap/coordinator/fixture.hpp"

#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include <sstream>

namespace lab::bootstrap::audit {
namespace {

namespace cr = shared::crypto;
namespace fs = std::filesystem;
namespace json = boost::json;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

std::string text_of(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines)
    out += l + "\n";
  return out;
}

class ExportTest : public coordinator::testing::CoordinatorTest {
 protected:
  void SetUp() override {
    CoordinatorTest::SetUp();
    changes(5);
  }
  // `n` audited changes (token.create).
  void changes(int n) {
    for (int i = 0; i < n; ++i)
      token({{"n", std::to_string(i)}});
  }
  [[nodiscard]] fs::path data() const { return dir_.path() / "data"; }

  FetchRows live() {
    return [this](std::int64_t after, std::size_t limit) -> Result<json::array> {
      auto rows = c().audit_events(after, limit);
      if (!rows)
        return rows.error();
      return api::to_json_array(*rows);
    };
  }
  json::object head() {
    return to_json(HeadLine{c().audit_head().value(), c().bundle_public_key()});
  }
  cr::Ed25519PublicKey key() {
    return cr::Ed25519PublicKey::from_raw(cr::base64url_decode(c().bundle_public_key()).value())
        .value();
  }
  // Pages of 2 rows, so paging is exercised.
  std::string exported() {
    std::ostringstream out;
    auto n = write_export(out, head(), live(), 2);
    EXPECT_TRUE(n) << n.error().message();
    return out.str();
  }
  Check alone(const std::string& text) {
    std::istringstream in(text);
    auto c = check_export(in, key());
    EXPECT_TRUE(c) << c.error().message();
    return c ? *c : Check{false, 0, 0, c.error().message()};
  }
  Check held(const std::string& text) {
    std::istringstream in(text);
    auto c = compare_export(in, live(), 2);
    EXPECT_TRUE(c) << c.error().message();
    return c ? *c : Check{false, 0, 0, c.error().message()};
  }

  // A copy of the database files with the coordinator closed, and putting it back: what
  // someone holding an old backup, or a snapshot of the disk, can do.
  void save_database(const fs::path& to) {
    coordinator_.reset();
    fs::create_directories(to);
    for (const char* f : {"coordinator.db", "coordinator.db-wal", "coordinator.db-shm"}) {
      if (fs::exists(data() / f))
        fs::copy_file(data() / f, to / f, fs::copy_options::overwrite_existing);
    }
    reopen();
  }
  void restore_database(const fs::path& from) {
    coordinator_.reset();
    for (const char* f : {"coordinator.db", "coordinator.db-wal", "coordinator.db-shm"}) {
      fs::remove(data() / f);
      if (fs::exists(from / f))
        fs::copy_file(from / f, data() / f);
    }
    reopen();
  }
};

TEST_F(ExportTest, AGoodExportVerifiesAndTheLiveLogHoldsIt) {
  const std::string text = exported();
  const auto lines = lines_of(text);
  ASSERT_EQ(lines.size(), 6U);
  const auto first = shared::json::parse_object(lines[0]).value();
  EXPECT_EQ(first.at("seq").as_int64(), 5);
  EXPECT_EQ(first.at("key").as_string(), c().bundle_public_key());
  EXPECT_EQ(first.size(), 5U);  // seq, hash, at, signature, key
  EXPECT_EQ(shared::json::parse_object(lines[5]).value().at("hash"), first.at("hash"));

  Check c = alone(text);
  EXPECT_TRUE(c.ok) << c.reason;
  EXPECT_EQ(c.rows, 5);
  c = held(text);
  EXPECT_TRUE(c.ok) << c.reason;
  EXPECT_EQ(c.rows, 5);
  // The log moves on; the export stays a prefix of it.
  changes(3);
  EXPECT_TRUE(held(text).ok);
}

TEST_F(ExportTest, TheExportEndsAtTheHeadItWasGiven) {
  const json::object earlier = head();
  changes(3);
  std::ostringstream out;
  auto n = write_export(out, earlier, live(), 2);
  ASSERT_TRUE(n) << n.error().message();
  EXPECT_EQ(*n, 5);
  EXPECT_TRUE(alone(out.str()).ok) << alone(out.str()).reason;
}

// A database put back from an older copy carries a head the appliance really signed, so the
// log on its own verifies; only an export taken in between shows what went missing.
TEST_F(ExportTest, ARollbackAfterTheExportIsDetected) {
  const fs::path backup = dir_.path() / "backup";
  save_database(backup);
  changes(2);
  const std::string text = exported();
  restore_database(backup);

  EXPECT_TRUE(c().verify_audit().value().ok);
  const Check c = held(text);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.first_bad_seq, 6);
  EXPECT_EQ(c.reason, "row 6 is missing from the live log, which ends at row 5");
  EXPECT_EQ(c.rows, 5);

  // A change after the rollback takes the missing row's place, and differs from it.
  clock_.advance(std::chrono::seconds(1));
  changes(1);
  EXPECT_EQ(held(text).reason, "row 6 differs from the export: at, subject, detail, hash");
}

TEST_F(ExportTest, ATruncationAfterTheExportIsDetected) {
  const std::string text = exported();
  tests::rewrite_audit(data() / "coordinator.db", "DELETE FROM audit WHERE seq > 3");
  const Check c = held(text);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.first_bad_seq, 4);
  EXPECT_EQ(c.reason, "row 4 is missing from the live log, which ends at row 3");
}

TEST_F(ExportTest, ARewriteAfterTheExportNamesTheRowAndFields) {
  const std::string text = exported();
  tests::rewrite_audit(data() / "coordinator.db",
                       R"(UPDATE audit SET detail = '{"labels":{}}' WHERE seq = 2)");
  const Check c = held(text);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.first_bad_seq, 2);
  EXPECT_EQ(c.reason, "row 2 differs from the export: detail, hash");
}

TEST_F(ExportTest, AnEditedExportFailsOnItsOwn) {
  const auto lines = lines_of(exported());

  auto edited = lines;
  auto row = shared::json::parse_object(edited[3]).value();
  row["actor"] = "someone-else";
  edited[3] = json::serialize(row);
  Check c = alone(text_of(edited));
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.reason, "row 3 modified");

  auto cut = lines;
  cut.pop_back();
  EXPECT_EQ(alone(text_of(cut)).reason,
            "row 5 missing: the signed head names row 5, the chain ends at row 4");

  // Re-chained and re-headed by someone without the key: the head names it, or it does not
  // verify.
  auto forged = lines;
  auto first = shared::json::parse_object(forged[0]).value();
  first["seq"] = 4;
  forged[0] = json::serialize(first);
  forged.pop_back();
  EXPECT_EQ(alone(text_of(forged)).reason,
            "the signed head (row 4) does not verify with the appliance's key");

  const auto stranger = cr::Ed25519PrivateKey::generate().value();
  HeadLine theirs = head_line_from_json(shared::json::parse_object(lines[0]).value()).value();
  sign_head(theirs.head, stranger);
  theirs.key = cr::base64url_encode(stranger.public_key().raw());
  auto other = lines;
  other[0] = json::serialize(to_json(theirs));
  EXPECT_EQ(alone(text_of(other)).reason, "the export's head was signed by key " +
                                              stranger.public_key().key_id() +
                                              ", not by this appliance's key " + key().key_id());
}

TEST_F(ExportTest, NotAnExportIsAnErrorNamingTheLine) {
  const auto lines = lines_of(exported());
  auto check = [&](const std::string& text) {
    std::istringstream in(text);
    return check_export(in, key());
  };
  auto r = check("");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), ExportError::empty);

  r = check(lines[0] + "\nnot json\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), ExportError::not_json);
  EXPECT_TRUE(r.error().detail().starts_with("line 2: ")) << r.error().detail();

  auto row = shared::json::parse_object(lines[1]).value();
  row.erase("hash");
  r = check(lines[0] + "\n" + json::serialize(row) + "\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), ExportError::row_field);
  EXPECT_TRUE(r.error().detail().starts_with("line 2: ")) << r.error().detail();
  EXPECT_NE(r.error().detail().find("'hash'"), std::string::npos) << r.error().detail();

  auto first = shared::json::parse_object(lines[0]).value();
  first.erase("key");
  r = check(json::serialize(first) + "\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), ExportError::head_field);
  EXPECT_NE(r.error().detail().find("'key'"), std::string::npos) << r.error().detail();
}

}  // namespace
}  // namespace lab::bootstrap::audit
