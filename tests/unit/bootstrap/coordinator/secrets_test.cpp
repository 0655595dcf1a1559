#include "shared/envelope/envelope.hpp"
#include "tests/unit/bootstrap/coordinator/fixture.hpp"

#include <fstream>
#include <sstream>

namespace lab::bootstrap::coordinator::testing {
namespace {

proto::Bundle open_bundle(Coordinator& c, const Agent& a) {
  auto signed_bundle = c.bundle(a.identity());
  EXPECT_TRUE(signed_bundle) << signed_bundle.error().message();
  auto key_raw = cr::base64url_decode(c.bundle_public_key()).value();
  auto key = cr::Ed25519PublicKey::from_raw(key_raw).value();
  auto env =
      shared::envelope::open(cr::as_bytes(*signed_bundle->envelope), key, proto::kBundleKind);
  EXPECT_TRUE(env) << env.error().message();
  auto b = proto::parse_bundle(cr::as_chars(env->payload));
  EXPECT_TRUE(b) << b.error().message();
  EXPECT_EQ(b->revision, signed_bundle->revision);
  return *b;
}

std::string open_secret(const Agent& a, const proto::SealedSecret& s) {
  auto sealed = cr::base64url_decode(s.sealed).value();
  const std::string aad = proto::sealed_secret_aad(a.joined.node_id, s.name, s.version);
  auto clear = cr::open(a.sealing, sealed, cr::as_bytes(aad));
  EXPECT_TRUE(clear) << clear.error().message();
  return clear ? std::string(clear->begin(), clear->end()) : std::string();
}

TEST_F(CoordinatorTest, EntitledNodeGetsASealedBoxOthersGetNothing) {
  Agent db = join("db1", {{"role", "db"}});
  Agent web = join("web1", {{"role", "web"}});
  auto info =
      c().set_secret("db-password", "correct horse battery", std::string("role=db"), operator_);
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->version, c().revision());
  EXPECT_EQ(info->size, 21U);
  EXPECT_EQ(info->entitlement, "role=db");

  proto::Bundle b = open_bundle(c(), db);
  ASSERT_EQ(b.secrets.size(), 1U);
  EXPECT_EQ(b.secrets[0].name, "db-password");
  EXPECT_EQ(b.secrets[0].version, info->version);
  EXPECT_EQ(open_secret(db, b.secrets[0]), "correct horse battery");
  // The box is bound to its node, name and version.
  auto sealed = cr::base64url_decode(b.secrets[0].sealed).value();
  EXPECT_FALSE(cr::open(
      db.sealing, sealed,
      cr::as_bytes(proto::sealed_secret_aad(db.joined.node_id, "db-password", info->version - 1))));
  EXPECT_FALSE(cr::open(
      web.sealing, sealed,
      cr::as_bytes(proto::sealed_secret_aad(db.joined.node_id, "db-password", info->version))));

  EXPECT_TRUE(open_bundle(c(), web).secrets.empty());
}

TEST_F(CoordinatorTest, GrantMovesEntitlementAndValueChangeBumpsVersion) {
  Agent db = join("db1", {{"role", "db"}});
  Agent web = join("web1", {{"role", "web"}});
  auto first = c().set_secret("api-key", "v1-value", std::nullopt, operator_).value();
  EXPECT_EQ(first.entitlement, "");
  EXPECT_TRUE(open_bundle(c(), db).secrets.empty());  // empty entitlement: nobody

  auto granted = c().grant_secret("api-key", "role in (db,web)", operator_);
  ASSERT_TRUE(granted) << granted.error().message();
  EXPECT_EQ(granted->version, first.version);
  EXPECT_EQ(open_secret(web, open_bundle(c(), web).secrets.at(0)), "v1-value");

  auto second = c().set_secret("api-key", "v2-value", std::nullopt, operator_).value();
  EXPECT_GT(second.version, first.version);
  EXPECT_EQ(second.entitlement, "role in (db,web)");
  auto s = open_bundle(c(), db).secrets.at(0);
  EXPECT_EQ(s.version, second.version);
  EXPECT_EQ(open_secret(db, s), "v2-value");

  auto listed = c().list_secrets().value();
  ASSERT_EQ(listed.size(), 1U);
  EXPECT_EQ(listed[0].name, "api-key");
  EXPECT_EQ(listed[0].size, 8U);

  EXPECT_EQ(c().grant_secret("nope", "a=b", operator_).error(), CoordinatorError::not_found);
  EXPECT_EQ(c().grant_secret("api-key", "a in (", operator_).error(),
            CoordinatorError::invalid_argument);
  ASSERT_TRUE(c().delete_secret("api-key", operator_));
  EXPECT_TRUE(open_bundle(c(), db).secrets.empty());
  EXPECT_EQ(c().delete_secret("api-key", operator_).error(), CoordinatorError::not_found);
}

TEST_F(CoordinatorTest, RebuildingBundlesReusesSealedBoxes) {
  Agent db = join("db1", {{"role", "db"}});
  ASSERT_TRUE(c().set_secret("pw", "value", std::string("role=db"), operator_));
  const std::string before = open_bundle(c(), db).secrets.at(0).sealed;
  ASSERT_TRUE(c().label_node("db1", {{"extra", "1"}}, {}, operator_));
  ASSERT_TRUE(c().set_group({"dbs", "role=db", {}, {}}, operator_));
  auto after = open_bundle(c(), db);
  EXPECT_EQ(after.groups, std::vector<std::string>{"dbs"});
  EXPECT_EQ(after.secrets.at(0).sealed, before);  // sealing is randomised: same bytes = cached
}

TEST_F(CoordinatorTest, ClearSecretValueIsNowhereOnDisk) {
  Agent db = join("db1", {{"role", "db"}});
  const std::string value = "Zq8-unmistakable-secret-value-41f3";
  ASSERT_TRUE(c().set_secret("marker", value, std::string("role=db"), operator_));
  ASSERT_TRUE(c().set_secret("marker", value + "-2", std::string("role=db"), operator_));
  auto scan = [&] {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_.path())) {
      if (!entry.is_regular_file())
        continue;
      std::ifstream in(entry.path(), std::ios::binary);
      std::ostringstream ss;
      ss << in.rdbuf();
      EXPECT_EQ(ss.str().find(value), std::string::npos) << entry.path();
    }
  };
  EXPECT_TRUE(std::filesystem::exists(dir_.path() / "data" / "coordinator.db-wal"));
  scan();
  coordinator_.reset();
  scan();
}

TEST_F(CoordinatorTest, SecretArgumentsAreValidated) {
  EXPECT_EQ(c().set_secret("bad name", "v", std::nullopt, operator_).error(),
            CoordinatorError::invalid_argument);
  EXPECT_EQ(c().set_secret("ok", std::string(65 * 1024, 'x'), std::nullopt, operator_).error(),
            CoordinatorError::invalid_argument);
  EXPECT_EQ(c().set_secret("ok", "v", std::string("a in ("), operator_).error(),
            CoordinatorError::invalid_argument);
}

}  // namespace
}  // namespace lab::bootstrap::coordinator::testing
