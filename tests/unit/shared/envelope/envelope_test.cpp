#include "shared/envelope/envelope.hpp"

#include "shared/crypto/random.hpp"

#include <gtest/gtest.h>

#include <random>

namespace {

using namespace lab::shared;
using envelope::EnvelopeError;

class EnvelopeTest : public ::testing::Test {
 protected:
  crypto::Ed25519PrivateKey key_ = crypto::Ed25519PrivateKey::generate().value();
};

TEST_F(EnvelopeTest, SealThenOpenGivesThePayloadBack) {
  const crypto::Bytes payload = crypto::to_bytes(R"({"node":"n1","revision":7})");
  auto bytes = envelope::seal(key_, "bundle", payload);
  ASSERT_TRUE(bytes);
  auto env = envelope::open(*bytes, key_.public_key(), "bundle");
  ASSERT_TRUE(env) << env.error().message();
  EXPECT_EQ(env->payload, payload);
  EXPECT_EQ(env->kind, "bundle");
  EXPECT_EQ(env->key_id, key_.public_key().key_id());
}

TEST_F(EnvelopeTest, RoundTripProperty) {
  // Property: serialize(parse(b)) == b and open(seal(p)) == p for random payloads and kinds.
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    const std::size_t n = std::uniform_int_distribution<std::size_t>(0, 2048)(rng);
    const crypto::Bytes payload = crypto::random_bytes(n).value();
    const std::string kind = "k" + std::to_string(i);
    const crypto::Bytes bytes = envelope::seal(key_, kind, payload).value();
    auto parsed = envelope::parse(bytes);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(envelope::serialize(*parsed), bytes);
    auto opened = envelope::open(bytes, key_.public_key(), kind);
    ASSERT_TRUE(opened);
    EXPECT_EQ(opened->payload, payload);
  }
}

TEST_F(EnvelopeTest, AnyFlippedBitIsRejected) {
  const crypto::Bytes bytes =
      envelope::seal(key_, "bundle", crypto::to_bytes("labels: a=b")).value();
  for (std::size_t i = 0; i < bytes.size() * 8; ++i) {
    crypto::Bytes t = bytes;
    t[i / 8] ^= static_cast<std::uint8_t>(1U << (i % 8));
    EXPECT_FALSE(envelope::open(t, key_.public_key(), "bundle")) << "bit " << i;
  }
}

TEST_F(EnvelopeTest, EveryTruncationIsRejectedAsTruncated) {
  const crypto::Bytes bytes = envelope::seal(key_, "bundle", crypto::to_bytes("payload")).value();
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    auto r = envelope::parse(crypto::ByteView(bytes).first(n));
    ASSERT_FALSE(r) << n;
    EXPECT_TRUE(r.error() == EnvelopeError::truncated || r.error() == EnvelopeError::bad_magic)
        << n;
  }
}

TEST_F(EnvelopeTest, WrongKeyIsUnknownKey) {
  const crypto::Bytes bytes = envelope::seal(key_, "bundle", crypto::to_bytes("p")).value();
  auto other = crypto::Ed25519PrivateKey::generate().value();
  auto r = envelope::open(bytes, other.public_key(), "bundle");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error() == EnvelopeError::unknown_key);
}

TEST_F(EnvelopeTest, ForgedKeyIdStillFailsTheSignature) {
  // An attacker signs with their key but writes our key id: the signature must not verify.
  auto attacker = crypto::Ed25519PrivateKey::generate().value();
  auto forged =
      envelope::parse(envelope::seal(attacker, "bundle", crypto::to_bytes("evil")).value()).value();
  forged.key_id = key_.public_key().key_id();
  auto r = envelope::open(envelope::serialize(forged), key_.public_key(), "bundle");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error() == EnvelopeError::bad_signature);
}

TEST_F(EnvelopeTest, KindIsSignedAndChecked) {
  const crypto::Bytes manifest = envelope::seal(key_, "manifest", crypto::to_bytes("m")).value();
  auto r = envelope::open(manifest, key_.public_key(), "bundle");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error() == EnvelopeError::wrong_kind);
}

TEST_F(EnvelopeTest, StructuralErrorsHaveTheirOwnCodes) {
  crypto::Bytes bytes = envelope::seal(key_, "bundle", crypto::to_bytes("p")).value();
  crypto::Bytes magic = bytes;
  magic[0] = 'X';
  EXPECT_TRUE(envelope::parse(magic).error() == EnvelopeError::bad_magic);
  crypto::Bytes version = bytes;
  version[4] = 2;
  EXPECT_TRUE(envelope::parse(version).error() == EnvelopeError::unsupported_version);
  crypto::Bytes trailing = bytes;
  trailing.push_back(0);
  EXPECT_TRUE(envelope::parse(trailing).error() == EnvelopeError::trailing_bytes);
  crypto::Bytes huge = bytes;
  const std::size_t len_at = 4 + 2 + 6 + 8;
  huge[len_at] = 0xff;
  EXPECT_TRUE(envelope::parse(huge).error() == EnvelopeError::too_large);
  crypto::Bytes kind = bytes;
  kind[6] = 0x01;  // control character in the kind
  EXPECT_TRUE(envelope::parse(kind).error() == EnvelopeError::invalid_kind);
}

TEST_F(EnvelopeTest, InvalidKindsAndOversizedPayloadsAreRefusedAtSeal) {
  EXPECT_TRUE(envelope::seal(key_, "", {}).error() == EnvelopeError::invalid_kind);
  EXPECT_TRUE(envelope::seal(key_, "has space", {}).error() == EnvelopeError::invalid_kind);
  EXPECT_TRUE(envelope::seal(key_, std::string(33, 'k'), {}).error() ==
              EnvelopeError::invalid_kind);
  const crypto::Bytes big(envelope::kMaxPayload + 1, 0);
  EXPECT_TRUE(envelope::seal(key_, "bundle", big).error() == EnvelopeError::too_large);
}

}  // namespace
