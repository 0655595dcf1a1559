#include "shared/crypto/hash.hpp"

#include "shared/crypto/encoding.hpp"

#include <gtest/gtest.h>

namespace {

using namespace lab::shared::crypto;

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(hex_encode(sha256(std::string_view(""))),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex_encode(sha256(std::string_view("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, IncrementalMatchesOneShotAndResets) {
  Sha256 h;
  h.update(std::string_view("a")).update(std::string_view("bc"));
  EXPECT_EQ(h.finish(), sha256(std::string_view("abc")));
  h.update(std::string_view(""));
  EXPECT_EQ(h.finish(), sha256(std::string_view("")));
}

TEST(Hmac, Rfc4231TestCase2) {
  EXPECT_EQ(hex_encode(hmac_sha256(as_bytes("Jefe"), as_bytes("what do ya want for nothing?"))),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(Hmac, EmptyKeyWorks) {
  EXPECT_EQ(hex_encode(hmac_sha256({}, {})),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(ConstantTimeEqual, ComparesContentAndLength) {
  EXPECT_TRUE(constant_time_equal(as_bytes("abc"), as_bytes("abc")));
  EXPECT_FALSE(constant_time_equal(as_bytes("abc"), as_bytes("abd")));
  EXPECT_FALSE(constant_time_equal(as_bytes("abc"), as_bytes("abcd")));
  EXPECT_TRUE(constant_time_equal({}, {}));
}

TEST(Hkdf, Rfc5869TestCase1) {
  const Bytes ikm(22, 0x0b);
  const Bytes salt = hex_decode("000102030405060708090a0b0c").value();
  const Bytes info = hex_decode("f0f1f2f3f4f5f6f7f8f9").value();
  auto okm = hkdf_sha256(ikm, salt, info, 42);
  ASSERT_TRUE(okm);
  EXPECT_EQ(hex_encode(*okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
}

}  // namespace
