#include "bootstrap/audit/chain.hpp"

#include "shared/crypto/encoding.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lab::bootstrap::audit {
namespace {

namespace cr = shared::crypto;

struct Row {
  std::int64_t seq;
  std::string canonical;
  std::string hash;
};

// A chain of `n` rows built the way the coordinator builds it.
std::vector<Row> chain_of(int n) {
  std::vector<Row> rows;
  cr::Digest prev{};
  for (int i = 1; i <= n; ++i) {
    Row r{i,
          canonical_row(i, 1'790'000'000 + i, "operator", "127.0.0.1", "token.create",
                        "t" + std::to_string(i), R"({"labels":{}})"),
          {}};
    prev = chain_hash(prev, r.canonical);
    r.hash = cr::hex_encode(prev);
    rows.push_back(std::move(r));
  }
  return rows;
}

SignedHead head_of(const std::vector<Row>& rows, const cr::Ed25519PrivateKey& key) {
  SignedHead h{static_cast<std::int64_t>(rows.size()),
               rows.empty() ? empty_chain_hash() : rows.back().hash,
               1'790'000'100,
               {}};
  sign_head(h, key);
  return h;
}

Check walk(const std::vector<Row>& rows, const SignedHead& head, const cr::Ed25519PublicKey& key) {
  ChainWalker w;
  for (const auto& r : rows) {
    if (!w.add(r.seq, r.canonical, r.hash))
      break;
  }
  return w.finish(head, key);
}

class ChainTest : public ::testing::Test {
 protected:
  cr::Ed25519PrivateKey key_ = cr::Ed25519PrivateKey::generate().value();
  cr::Ed25519PublicKey pub_ = key_.public_key();
};

TEST_F(ChainTest, CanonicalRowIsAJsonArrayOfTheColumns) {
  EXPECT_EQ(canonical_row(3, 7, "operator", "::1", "node.label", "n1", R"({"x":"1"})"),
            R"([3,7,"operator","::1","node.label","n1","{\"x\":\"1\"}"])");
  EXPECT_EQ(empty_chain_hash(), std::string(64, '0'));
}

TEST_F(ChainTest, HeadTextIsDomainSeparated) {
  const SignedHead h{17, "ab01", 1'790'000'000, "sig"};
  EXPECT_EQ(head_text(h), "lab-audit-head-v1\n17\nab01\n1790000000");
}

TEST_F(ChainTest, SignatureCoversSeqHashAndTime) {
  SignedHead h{5, std::string(64, 'a'), 1'790'000'000, {}};
  sign_head(h, key_);
  EXPECT_TRUE(head_signature_ok(h, pub_));
  for (auto change : {+[](SignedHead& x) { ++x.seq; }, +[](SignedHead& x) { x.hash[0] = 'b'; },
                      +[](SignedHead& x) { ++x.at; }}) {
    SignedHead c = h;
    change(c);
    EXPECT_FALSE(head_signature_ok(c, pub_)) << head_text(c);
  }
  const auto other = cr::Ed25519PrivateKey::generate().value();
  EXPECT_FALSE(head_signature_ok(h, other.public_key()));
  SignedHead garbage = h;
  garbage.signature = "not base64url!";
  EXPECT_FALSE(head_signature_ok(garbage, pub_));
  garbage.signature.clear();
  EXPECT_FALSE(head_signature_ok(garbage, pub_));
}

TEST_F(ChainTest, AGoodChainAndTheEmptyChainPass) {
  const auto rows = chain_of(4);
  const Check c = walk(rows, head_of(rows, key_), pub_);
  EXPECT_TRUE(c.ok) << c.reason;
  EXPECT_EQ(c.rows, 4);
  EXPECT_EQ(c.first_bad_seq, 0);
  const Check empty = walk({}, head_of({}, key_), pub_);
  EXPECT_TRUE(empty.ok) << empty.reason;
}

TEST_F(ChainTest, ModifiedAndMissingRowsAreNamed) {
  auto rows = chain_of(4);
  const SignedHead head = head_of(rows, key_);
  auto modified = rows;
  modified[1].canonical += " ";
  Check c = walk(modified, head, pub_);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.first_bad_seq, 2);
  EXPECT_EQ(c.reason, "row 2 modified");
  EXPECT_EQ(c.rows, 1);

  auto gap = rows;
  gap.erase(gap.begin() + 2);
  c = walk(gap, head, pub_);
  EXPECT_EQ(c.first_bad_seq, 3);
  EXPECT_EQ(c.reason, "row 3 missing");
}

TEST_F(ChainTest, TheHeadMustBeSignedAndNameTheLastRow) {
  const auto rows = chain_of(4);
  SignedHead unsigned_head = head_of(rows, key_);
  unsigned_head.signature.clear();
  Check c = walk(rows, unsigned_head, pub_);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.first_bad_seq, 0);
  EXPECT_EQ(c.reason, "the head (row 4) is not signed");

  const auto stranger = cr::Ed25519PrivateKey::generate().value();
  c = walk(rows, head_of(rows, stranger), pub_);
  EXPECT_EQ(c.reason, "the signed head (row 4) does not verify with the appliance's key");

  // Cut short: the head names a row the chain no longer has.
  const std::vector<Row> short_rows(rows.begin(), rows.begin() + 2);
  c = walk(short_rows, head_of(rows, key_), pub_);
  EXPECT_EQ(c.first_bad_seq, 3);
  EXPECT_EQ(c.reason, "row 3 missing: the signed head names row 4, the chain ends at row 2");

  // Rows nobody signed after the head.
  c = walk(rows, head_of(short_rows, key_), pub_);
  EXPECT_EQ(c.first_bad_seq, 3);
  EXPECT_EQ(c.reason, "row 3 is not signed: the signed head names row 2, the chain ends at row 4");

  // Same length, another last row.
  SignedHead other = head_of(rows, key_);
  other.hash = rows[2].hash;
  sign_head(other, key_);
  c = walk(rows, other, pub_);
  EXPECT_EQ(c.first_bad_seq, 4);
  EXPECT_EQ(c.reason, "row 4 does not match the signed head");
}

}  // namespace
}  // namespace lab::bootstrap::audit
