#include "shared/crypto/encoding.hpp"

#include "shared/crypto/random.hpp"

#include <gtest/gtest.h>

namespace {

using namespace lab::shared::crypto;

TEST(Hex, EncodesLowerCaseAndDecodesBothCases) {
  const Bytes b{0x00, 0x1f, 0xab, 0xff};
  EXPECT_EQ(hex_encode(b), "001fabff");
  EXPECT_EQ(hex_decode("001FABff").value(), b);
  EXPECT_TRUE(hex_decode("").value().empty());
}

TEST(Hex, RejectsOddLengthAndBadDigitsWithPosition) {
  auto odd = hex_decode("abc");
  ASSERT_FALSE(odd);
  EXPECT_TRUE(odd.error() == CryptoError::invalid_encoding);
  auto bad = hex_decode("00zz");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().detail().find("position 3"), std::string::npos) << bad.error().detail();
}

TEST(Base64Url, KnownVectorsFromRfc4648) {
  // RFC 4648 §10 vectors, in the URL alphabet without padding.
  EXPECT_EQ(base64url_encode(as_bytes("")), "");
  EXPECT_EQ(base64url_encode(as_bytes("f")), "Zg");
  EXPECT_EQ(base64url_encode(as_bytes("fo")), "Zm8");
  EXPECT_EQ(base64url_encode(as_bytes("foo")), "Zm9v");
  EXPECT_EQ(base64url_encode(as_bytes("foob")), "Zm9vYg");
  EXPECT_EQ(base64url_encode(as_bytes("fooba")), "Zm9vYmE");
  EXPECT_EQ(base64url_encode(as_bytes("foobar")), "Zm9vYmFy");
  EXPECT_EQ(base64url_encode(Bytes{0xfb, 0xff}), "-_8");
  EXPECT_EQ(base64url_decode("Zm9vYmE=").value(), to_bytes("fooba"));
}

TEST(Base64Url, RoundTripsRandomData) {
  for (std::size_t n = 0; n < 100; ++n) {
    Bytes b = random_bytes(n).value();
    EXPECT_EQ(base64url_decode(base64url_encode(b)).value(), b);
  }
}

TEST(Base64Url, RejectsForeignAlphabetImpossibleLengthAndNonCanonicalBits) {
  auto plus = base64url_decode("ab+/");
  ASSERT_FALSE(plus);
  EXPECT_NE(plus.error().detail().find("position 3"), std::string::npos);
  EXPECT_FALSE(base64url_decode("abcde"));  // 5 mod 4 == 1
  EXPECT_FALSE(base64url_decode("Zh"));     // "Zg" is the canonical form of "f"
}

}  // namespace
