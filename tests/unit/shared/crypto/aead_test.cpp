#include "shared/crypto/aead.hpp"

#include "shared/crypto/encoding.hpp"
#include "shared/crypto/random.hpp"

#include <gtest/gtest.h>

namespace {

using namespace lab::shared::crypto;

TEST(AesGcm, NistVectorWithEmptyPlaintext) {
  // NIST GCM test case 13: 256-bit zero key, zero IV, empty plaintext.
  const Bytes key(32, 0);
  const Bytes iv(12, 0);
  auto ct = aes256gcm_encrypt(key, iv, {}, {});
  ASSERT_TRUE(ct);
  EXPECT_EQ(hex_encode(*ct), "530f8afbc74536b9a963b4f1c4cb738b");
}

TEST(AesGcm, NistVectorWithOneBlock) {
  // NIST GCM test case 14: zero key, zero IV, one zero block.
  const Bytes key(32, 0);
  const Bytes iv(12, 0);
  const Bytes pt(16, 0);
  auto ct = aes256gcm_encrypt(key, iv, pt, {});
  ASSERT_TRUE(ct);
  EXPECT_EQ(hex_encode(*ct), "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919");
  auto back = aes256gcm_decrypt(key, iv, *ct, {});
  ASSERT_TRUE(back);
  EXPECT_EQ(Bytes(back->begin(), back->end()), pt);
}

TEST(Wrap, RoundTripsAndUsesFreshNonces) {
  const Bytes key = random_bytes(32).value();
  const Bytes data_key = random_bytes(32).value();
  auto a = wrap(key, data_key, as_bytes("node-1"));
  auto b = wrap(key, data_key, as_bytes("node-1"));
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->size(), data_key.size() + kWrapOverhead);
  EXPECT_NE(*a, *b);
  auto back = unwrap(key, *a, as_bytes("node-1"));
  ASSERT_TRUE(back);
  EXPECT_EQ(Bytes(back->begin(), back->end()), data_key);
}

TEST(Wrap, EveryFlippedBitIsDetected) {
  const Bytes key = random_bytes(32).value();
  const Bytes wrapped = wrap(key, as_bytes("secret value"), as_bytes("aad")).value();
  for (std::size_t i = 0; i < wrapped.size() * 8; ++i) {
    Bytes t = wrapped;
    t[i / 8] ^= static_cast<std::uint8_t>(1U << (i % 8));
    auto r = unwrap(key, t, as_bytes("aad"));
    ASSERT_FALSE(r) << "bit " << i;
    EXPECT_TRUE(r.error() == CryptoError::decrypt_failed);
  }
}

TEST(Wrap, WrongKeyOrAadFails) {
  const Bytes key = random_bytes(32).value();
  const Bytes other = random_bytes(32).value();
  const Bytes wrapped = wrap(key, as_bytes("v"), as_bytes("a")).value();
  EXPECT_TRUE(unwrap(other, wrapped, as_bytes("a")).error() == CryptoError::decrypt_failed);
  EXPECT_TRUE(unwrap(key, wrapped, as_bytes("b")).error() == CryptoError::decrypt_failed);
}

TEST(Wrap, BadSizesAreRefused) {
  const Bytes key = random_bytes(32).value();
  EXPECT_TRUE(unwrap(key, Bytes(27, 0), {}).error() == CryptoError::bad_length);
  EXPECT_TRUE(wrap(Bytes(16, 0), as_bytes("x"), {}).error() == CryptoError::invalid_key);
  EXPECT_TRUE(aes256gcm_encrypt(key, Bytes(8, 0), {}, {}).error() == CryptoError::bad_length);
}

}  // namespace
