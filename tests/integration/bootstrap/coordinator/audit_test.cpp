// The audit trail through the real `lab` CLI against a real `lab serve`, attacked the way
// someone with write access to coordinator.db but not to the appliance's key would: rows
// rewritten with SQL while lab serve is stopped and the hash chain recomputed, or the database
// put back from an older copy.
#include "tests/integration/bootstrap/coordinator/appliance.hpp"
#include "tests/support/audit_forgery.hpp"
#include "tests/support/text.hpp"

#include <gtest/gtest.h>

#include <filesystem>

namespace lab::tests::coordinator {
namespace {

namespace fs = std::filesystem;

using lab::tests::contains;

// Four audited changes: token.create ×3, token.revoke.
void make_history(const Appliance& a) {
  for (const std::string labels : {"role=web", "role=db", "role=mail"}) {
    auto created = a.lab({"token", "create", "--labels", labels});
    ASSERT_EQ(created.exit_code, 0) << created.output;
  }
  auto tokens = a.lab_json({"token", "list"});
  ASSERT_TRUE(tokens.is_array() && !tokens.as_array().empty());
  const std::string id(tokens.as_array()[0].at("id").as_string());
  ASSERT_EQ(a.lab({"token", "revoke", id}).exit_code, 0);
}

constexpr const char* kDatabaseFiles[] = {"coordinator.db", "coordinator.db-wal",
                                          "coordinator.db-shm"};

// The database files as they are (lab serve stopped), and putting them back.
void copy_database(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  for (const char* f : kDatabaseFiles) {
    fs::remove(to / f);
    if (fs::exists(from / f))
      fs::copy_file(from / f, to / f);
  }
}

TEST(AuditCli, ARewrittenAndReChainedDatabaseFailsVerification) {
  Appliance a;
  make_history(a);
  auto good = a.lab({"audit", "verify"});
  ASSERT_EQ(good.exit_code, 0) << good.output;
  const fs::path file = a.dir() / "audit.jsonl";
  ASSERT_EQ(a.lab({"audit", "export", "--out", file.string()}).exit_code, 0);

  ASSERT_EQ(a.stop(), 0);
  rewrite_audit(
      a.data_dir() / "coordinator.db",
      R"(UPDATE audit SET detail = '{"labels":{"role":"nothing-to-see"}}' WHERE seq = 2)");
  a.start();
  auto r = a.lab({"audit", "verify"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "the signed head (row 4) does not verify")) << r.output;
  // An export taken before names the row that changed.
  r = a.lab({"audit", "verify", "--against", file.string()});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "row 2 differs from the export: detail, hash")) << r.output;
}

// An older copy of the database carries a head the appliance really signed: it verifies on its
// own, and only an export taken in between shows the rows it lost.
TEST(AuditCli, AnExportShowsALaterRollback) {
  Appliance a;
  make_history(a);
  ASSERT_EQ(a.stop(), 0);
  copy_database(a.data_dir(), a.dir() / "backup");
  a.start();
  ASSERT_FALSE(a.create_token("role=late").empty());
  ASSERT_FALSE(a.create_token("role=later").empty());

  const fs::path file = a.dir() / "audit.jsonl";
  auto exported = a.lab({"audit", "export", "--out", file.string()});
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  EXPECT_TRUE(contains(exported.output, "exported 6 events")) << exported.output;
  const std::string text = read_file(file);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 7);
  EXPECT_EQ(a.lab({"audit", "export"}).output, text);  // the same lines on stdout

  auto held = a.lab({"audit", "verify", "--against", file.string()});
  EXPECT_EQ(held.exit_code, 0) << held.output;
  EXPECT_TRUE(contains(held.output, "it still holds all 6 events of")) << held.output;

  ASSERT_EQ(a.stop(), 0);
  copy_database(a.dir() / "backup", a.data_dir());
  a.start();
  auto plain = a.lab({"audit", "verify"});
  EXPECT_EQ(plain.exit_code, 0) << plain.output;
  auto r = a.lab({"audit", "verify", "--against", file.string()});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "row 5 is missing from the live log, which ends at row 4"))
      << r.output;
}

TEST(AuditCli, AnEditedExportAndBadArguments) {
  Appliance a;
  make_history(a);
  const fs::path file = a.dir() / "audit.jsonl";
  ASSERT_EQ(a.lab({"audit", "export", "--out", file.string()}).exit_code, 0);
  std::string text = read_file(file);
  const auto at = text.find("\"role=db\"");
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, 9, "\"role=xx\"");
  const auto edited = a.dir().write("edited.jsonl", text);
  auto r = a.lab({"audit", "verify", "--against", edited.string()});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "does not verify: row 2 modified")) << r.output;

  const auto junk = a.dir().write("junk.jsonl", "hello\n");
  r = a.lab({"audit", "verify", "--against", junk.string()});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "line 1")) << r.output;

  EXPECT_EQ(a.lab({"audit", "verify", "--against"}).exit_code, 2);
  EXPECT_EQ(a.lab({"audit", "verify", "--against", (a.dir() / "missing").string()}).exit_code, 2);

  // The head, like the rest of the trail, is for the operator only.
  EXPECT_EQ(a.curl({}, "/v1/audit/head").status, 401);
  auto head = a.curl({"-H", "Authorization: Bearer " + a.operator_token()}, "/v1/audit/head");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(text.substr(0, text.find('\n')), head.body);

  auto json = a.lab_json({"audit", "verify", "--against", file.string()});
  EXPECT_TRUE(json.at("live").at("ok").as_bool());
  EXPECT_EQ(json.at("export").at("rows").as_int64(), 4);
}

}  // namespace
}  // namespace lab::tests::coordinator
