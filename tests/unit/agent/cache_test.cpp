// The cache on a real SQLite file: identity, apply rules (signature, node, revision), reads,
// encryption at rest, verify.
#include "agent/cache/cache.hpp"

#include "shared/crypto/random.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/unit/agent/bundle_maker.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace {

using namespace lab::agent::cache;
namespace crypto = lab::shared::crypto;
namespace keystore = lab::agent::keystore;
using lab::tests::BundleMaker;
using lab::tests::TempDir;

std::shared_ptr<const keystore::DataKey> random_key() {
  auto raw = crypto::random_bytes(32).value();
  return std::make_shared<const keystore::DataKey>(
      keystore::DataKey::from_bytes(raw, keystore::Protection::file).value());
}

class CacheTest : public ::testing::Test {
 protected:
  std::unique_ptr<Cache> open_cache() {
    auto c = Cache::open(dir_ / "cache.db", key_);
    EXPECT_TRUE(c) << c.error().message();
    return std::move(*c);
  }
  std::unique_ptr<Cache> joined_cache() {
    auto c = open_cache();
    EXPECT_TRUE(c->store_identity(maker_.identity()));
    return c;
  }
  TempDir dir_{"lab-cache"};
  std::shared_ptr<const keystore::DataKey> key_ = random_key();
  BundleMaker maker_;
};

TEST_F(CacheTest, IdentityRoundTripsAndSecondJoinIsRefused) {
  auto c = open_cache();
  EXPECT_EQ(c->identity().error(), CacheError::not_joined);
  EXPECT_FALSE(c->joined().value());
  ASSERT_TRUE(c->store_identity(maker_.identity()));
  EXPECT_EQ(c->store_identity(maker_.identity()).error(), CacheError::already_joined);
  c.reset();

  auto again = open_cache();
  auto id = again->identity();
  ASSERT_TRUE(id) << id.error().message();
  EXPECT_EQ(id->node_id, "n-0001");
  EXPECT_EQ(id->tls_key_pem, maker_.identity().tls_key_pem);
  EXPECT_EQ(id->sealing_key, maker_.sealing_key().raw());
  EXPECT_TRUE(again->joined().value());
}

TEST_F(CacheTest, PrivateKeysAreNotStoredInClear) {
  auto c = joined_cache();
  c.reset();
  std::stringstream all;
  for (const auto* suffix : {"", "-wal"}) {
    std::ifstream in((dir_ / "cache.db").string() + suffix, std::ios::binary);
    all << in.rdbuf();
  }
  const std::string bytes = all.str();
  ASSERT_FALSE(bytes.empty());
  EXPECT_EQ(bytes.find("PRIVATE KEY"), std::string::npos);
  const auto sealing = maker_.sealing_key().raw();
  EXPECT_EQ(bytes.find(std::string(sealing.begin(), sealing.end())), std::string::npos);

  // Another data key cannot read the identity.
  auto other = Cache::open(dir_ / "cache.db", random_key()).value();
  EXPECT_EQ(other->identity().error(), CacheError::bad_identity);
}

TEST_F(CacheTest, AppliesNewerBundlesAndServesLabelsAndSecrets) {
  auto c = joined_cache();
  auto b = c->apply(maker_.envelope(3, {{"role", "web"}}, {{"db-password", "hunter2"}}), 1000);
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(b->revision, 3);
  auto v = c->view().value();
  EXPECT_EQ(v.revision, 3);
  EXPECT_EQ(v.labels.at("role"), "web");
  EXPECT_EQ(v.confirmed_at, 1000);
  auto secret = open_secret(v, maker_.sealing_key(), "db-password");
  ASSERT_TRUE(secret) << secret.error().message();
  EXPECT_EQ(crypto::as_chars(*secret), "hunter2");
  EXPECT_EQ(open_secret(v, maker_.sealing_key(), "nope").error(), CacheError::no_secret);

  // Newer replaces labels and secrets wholesale.
  const auto env5 = maker_.envelope(5, {{"env", "prod"}});
  ASSERT_TRUE(c->apply(env5, 1001));
  v = c->view().value();
  EXPECT_EQ(v.revision, 5);
  EXPECT_EQ(v.labels.size(), 1U);
  EXPECT_EQ(v.labels.count("role"), 0U);
  EXPECT_TRUE(v.secrets.empty());
  EXPECT_TRUE(c->verify());
  // The envelope is kept verbatim.
  EXPECT_EQ(c->envelope().value().value(), env5);
}

TEST_F(CacheTest, KeepersAreReadWithoutTheLabels) {
  auto c = joined_cache();
  EXPECT_EQ(c->keepers().value().revision, 0);  // before the first bundle: nothing to ask
  EXPECT_TRUE(c->keepers().value().keepers.empty());
  auto b = maker_.bundle(4, {{"role", "web"}});
  b.peers = {{"k1", "10.0.0.1:8444"}, {"k2", "10.0.0.2:8444"}};
  b.gossip = {{"g1", "10.0.0.3:8444"}};
  ASSERT_TRUE(c->apply(maker_.sign(b), 1));
  const auto k = c->keepers().value();
  EXPECT_EQ(k.revision, 4);
  ASSERT_EQ(k.keepers.size(), 2U);  // the keepers only, not the further gossip partners
  EXPECT_EQ(k.keepers[0].node_id, "k1");
  EXPECT_EQ(k.keepers[1].address, "10.0.0.2:8444");
  EXPECT_EQ(c->view().value().keepers.size(), 2U);  // the same directory view() reads
}

TEST_F(CacheTest, RefusesOlderEqualForeignAndForgedBundlesWithoutChange) {
  auto c = joined_cache();
  const auto good = maker_.envelope(7, {{"role", "db"}});
  ASSERT_TRUE(c->apply(good, 1));
  EXPECT_EQ(c->envelope().value().value(), good);

  EXPECT_EQ(c->apply(maker_.envelope(7, {{"role", "x"}}), 2).error(), CacheError::not_newer);
  EXPECT_EQ(c->apply(maker_.envelope(6, {{"role", "x"}}), 2).error(), CacheError::not_newer);

  BundleMaker other_node("n-9999");
  auto foreign = maker_.bundle(8, {{"role", "x"}});
  foreign.node_id = "n-9999";
  EXPECT_EQ(c->apply(maker_.sign(foreign), 2).error(), CacheError::wrong_node);

  // Signed by another key (a coordinator this node does not trust).
  EXPECT_EQ(c->apply(other_node.sign(maker_.bundle(9, {{"role", "x"}})), 2).error(),
            CacheError::bad_signature);
  // One flipped byte in the payload.
  auto tampered = maker_.envelope(10, {{"role", "x"}});
  tampered[tampered.size() / 2] ^= 1;
  EXPECT_EQ(c->apply(tampered, 2).error(), CacheError::bad_signature);
  EXPECT_EQ(c->apply(crypto::to_bytes("not an envelope"), 2).error(), CacheError::bad_signature);

  auto v = c->view().value();
  EXPECT_EQ(v.revision, 7);
  EXPECT_EQ(v.labels.at("role"), "db");
  EXPECT_EQ(v.confirmed_at, 1);
  EXPECT_EQ(c->envelope().value().value(), good);
}

// A bundle with one secret this node cannot open (sealed to another key, as after a rejoin
// with new keys, or damaged) is refused whole: the cache keeps what it can serve.
TEST_F(CacheTest, RefusesABundleWithASecretThatDoesNotOpenWithoutChange) {
  auto c = joined_cache();
  const auto good = maker_.envelope(3, {{"role", "db"}}, {{"pw", "first"}});
  ASSERT_TRUE(c->apply(good, 10));

  const BundleMaker other;  // another node's keys: its sealing key is not ours
  auto foreign_box = maker_.bundle(4, {{"role", "x"}}, {{"pw", "second"}, {"api", "k"}});
  const auto aad = lab::shared::protocol::sealed_secret_aad(maker_.node_id(), "pw", 4);
  foreign_box.secrets[1].sealed =
      crypto::base64url_encode(crypto::seal(other.sealing_key().public_key(),
                                            crypto::as_bytes("second"), crypto::as_bytes(aad))
                                   .value());
  ASSERT_EQ(foreign_box.secrets[1].name, "pw");
  auto refused = c->apply(maker_.sign(foreign_box), 11);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), CacheError::secret_unopened);
  EXPECT_NE(refused.error().message().find("'pw'"), std::string::npos) << refused.error().message();

  // Bound to another version than the one it claims: the AAD differs, it does not open either.
  auto replayed = maker_.bundle(5, {{"role", "y"}}, {{"pw", "third"}});
  replayed.secrets[0].version = 3;
  EXPECT_EQ(c->apply(maker_.sign(replayed), 12).error(), CacheError::secret_unopened);

  auto v = c->view().value();
  EXPECT_EQ(v.revision, 3);
  EXPECT_EQ(v.labels.at("role"), "db");
  EXPECT_EQ(v.secrets.size(), 1U);
  EXPECT_EQ(crypto::as_chars(open_secret(v, maker_.sealing_key(), "pw").value()), "first");
  EXPECT_EQ(v.confirmed_at, 10);
  EXPECT_EQ(c->envelope().value().value(), good);
  EXPECT_TRUE(c->verify());
}

TEST_F(CacheTest, ApplyBeforeJoinIsRefused) {
  auto c = open_cache();
  EXPECT_EQ(c->apply(maker_.envelope(1, {}), 1).error(), CacheError::not_joined);
}

TEST_F(CacheTest, RejoinReplacesIdentityAndDropsTheOldBundle) {
  auto c = joined_cache();
  ASSERT_TRUE(c->apply(maker_.envelope(4, {{"a", "b"}}), 1));
  BundleMaker fresh("n-0002");
  ASSERT_TRUE(c->store_identity(fresh.identity(), true));
  EXPECT_EQ(c->identity()->node_id, "n-0002");
  EXPECT_EQ(c->revision().value(), 0);
  ASSERT_TRUE(c->apply(fresh.envelope(1, {{"x", "y"}}), 2));
}

TEST_F(CacheTest, CertificateUpdateIsKept) {
  auto c = joined_cache();
  ASSERT_TRUE(c->update_certificate("CERT2", "KEY2"));
  c.reset();
  auto id = open_cache()->identity().value();
  EXPECT_EQ(id.certificate_pem, "CERT2");
  EXPECT_EQ(id.tls_key_pem, "KEY2");
}

}  // namespace
