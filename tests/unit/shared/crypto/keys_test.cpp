#include "shared/crypto/keys.hpp"

#include "shared/crypto/encoding.hpp"
#include "shared/crypto/random.hpp"

#include <gtest/gtest.h>

#include <random>

namespace {

using namespace lab::shared::crypto;

TEST(Ed25519, Rfc8032TestVector1) {
  const Bytes seed =
      hex_decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").value();
  auto key = Ed25519PrivateKey::from_seed(seed);
  ASSERT_TRUE(key);
  const auto pub = key->public_key().raw();
  EXPECT_EQ(hex_encode(pub), "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  const Signature sig = key->sign({});
  EXPECT_EQ(hex_encode(sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39"
            "701cf9b46bd25bf5f0595bbe24655141438e7a100b");
  EXPECT_TRUE(key->public_key().verify({}, sig));
}

TEST(Ed25519, SignVerifyAndRejectTampering) {
  auto key = Ed25519PrivateKey::generate().value();
  const Bytes msg = to_bytes("bundle payload");
  const Signature sig = key.sign(msg);
  const auto pub = key.public_key();
  EXPECT_TRUE(pub.verify(msg, sig));
  Bytes other = msg;
  other[0] ^= 1;
  EXPECT_FALSE(pub.verify(other, sig));
  Signature bad = sig;
  bad[10] ^= 0x80;
  EXPECT_FALSE(pub.verify(msg, bad));
  EXPECT_FALSE(pub.verify(msg, ByteView(sig).first(63)));
  auto stranger = Ed25519PrivateKey::generate().value().public_key();
  EXPECT_FALSE(stranger.verify(msg, sig));
}

TEST(Ed25519, SeedRoundTripAndKeyId) {
  auto key = Ed25519PrivateKey::generate().value();
  auto again = Ed25519PrivateKey::from_seed(key.seed()).value();
  EXPECT_EQ(again.public_key().raw(), key.public_key().raw());
  EXPECT_EQ(key.public_key().key_id().size(), 16u);
  EXPECT_EQ(key.public_key().key_id(), again.public_key().key_id());
  auto pub = Ed25519PublicKey::from_raw(key.public_key().raw()).value();
  EXPECT_EQ(pub.key_id(), key.public_key().key_id());
}

TEST(Ed25519, WrongSizeKeysAreRefused) {
  EXPECT_TRUE(Ed25519PublicKey::from_raw(Bytes(31, 1)).error() == CryptoError::invalid_key);
  EXPECT_TRUE(Ed25519PrivateKey::from_seed(Bytes(33, 1)).error() == CryptoError::invalid_key);
}

TEST(SealedBox, RoundTripProperty) {
  // Property: open(seal(m)) == m for random messages and AADs of many sizes.
  auto node = X25519PrivateKey::generate().value();
  std::mt19937 rng(20261122);
  for (int i = 0; i < 200; ++i) {
    const std::size_t n = std::uniform_int_distribution<std::size_t>(0, 4096)(rng);
    const Bytes msg = random_bytes(n).value();
    const Bytes aad = random_bytes(n % 64).value();
    auto sealed = seal(node.public_key(), msg, aad);
    ASSERT_TRUE(sealed);
    EXPECT_EQ(sealed->size(), n + kSealOverhead);
    auto opened = open(node, *sealed, aad);
    ASSERT_TRUE(opened) << opened.error().message();
    EXPECT_EQ(Bytes(opened->begin(), opened->end()), msg);
  }
}

TEST(SealedBox, OnlyTheAddresseeCanOpen) {
  auto alice = X25519PrivateKey::generate().value();
  auto bob = X25519PrivateKey::generate().value();
  const Bytes sealed =
      seal(alice.public_key(), as_bytes("db-password"), as_bytes("node-a|7")).value();
  auto r = open(bob, sealed, as_bytes("node-a|7"));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error() == CryptoError::decrypt_failed);
  // The same plaintext sealed twice never looks the same (fresh ephemeral key).
  EXPECT_NE(sealed,
            seal(alice.public_key(), as_bytes("db-password"), as_bytes("node-a|7")).value());
}

TEST(SealedBox, AadIsBound) {
  auto node = X25519PrivateKey::generate().value();
  const Bytes sealed = seal(node.public_key(), as_bytes("v"), as_bytes("node-a|7")).value();
  EXPECT_FALSE(open(node, sealed, as_bytes("node-a|8")));
}

TEST(SealedBox, EveryFlippedBitIsDetected) {
  auto node = X25519PrivateKey::generate().value();
  const Bytes sealed = seal(node.public_key(), as_bytes("top secret"), as_bytes("aad")).value();
  for (std::size_t i = 0; i < sealed.size() * 8; ++i) {
    Bytes t = sealed;
    t[i / 8] ^= static_cast<std::uint8_t>(1U << (i % 8));
    EXPECT_FALSE(open(node, t, as_bytes("aad"))) << "bit " << i;
  }
}

TEST(SealedBox, TruncatedAndLowOrderInputIsRefused) {
  auto node = X25519PrivateKey::generate().value();
  const Bytes sealed = seal(node.public_key(), as_bytes("x"), {}).value();
  for (std::size_t n = 0; n < kSealOverhead; ++n) {
    auto r = open(node, ByteView(sealed).first(n), {});
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error() == CryptoError::bad_length);
  }
  Bytes zero_point = sealed;
  std::fill(zero_point.begin() + 1, zero_point.begin() + 33, 0);  // the all-zero (low-order) point
  EXPECT_FALSE(open(node, zero_point, {}));
}

TEST(X25519, RawRoundTrip) {
  auto k = X25519PrivateKey::generate().value();
  auto again = X25519PrivateKey::from_raw(k.raw()).value();
  EXPECT_EQ(again.public_key().raw(), k.public_key().raw());
  EXPECT_TRUE(X25519PublicKey::from_raw(Bytes(5, 0)).error() == CryptoError::invalid_key);
}

}  // namespace
