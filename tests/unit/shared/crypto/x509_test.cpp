#include "shared/crypto/x509.hpp"

#include "shared/crypto/keys.hpp"

#include <gtest/gtest.h>

namespace {

using namespace lab::shared::crypto;
using namespace std::chrono_literals;

struct Ca {
  EcPrivateKey key;
  Certificate cert;
};

Ca make_ca(std::string cn = "lab CA") {
  auto key = EcPrivateKey::generate().value();
  const auto now = std::chrono::system_clock::now();
  auto cert = self_signed_ca(key, {.common_name = std::move(cn),
                                   .dns_names = {},
                                   .ip_addresses = {},
                                   .not_before = now - 1h,
                                   .not_after = now + 24h * 3650,
                                   .usage = CertUsage::ca})
                  .value();
  return {key, cert};
}

CertificateSpec leaf_spec(std::string cn, std::chrono::hours valid = 24h * 7) {
  const auto now = std::chrono::system_clock::now();
  return {.common_name = std::move(cn),
          .dns_names = {"node.example"},
          .ip_addresses = {"127.0.0.1"},
          .not_before = now - 1h,
          .not_after = now + valid,
          .usage = CertUsage::client};
}

TEST(X509, KeyPemRoundTrip) {
  auto key = EcPrivateKey::generate().value();
  const std::string pem = key.to_pem();
  EXPECT_NE(pem.find("BEGIN PRIVATE KEY"), std::string::npos);
  auto again = EcPrivateKey::from_pem(pem).value();
  EXPECT_EQ(again.public_key_der(), key.public_key_der());
}

TEST(X509, NonP256KeysAreRefused) {
  EXPECT_TRUE(EcPrivateKey::from_pem("not a key").error() == CryptoError::invalid_key);
  // An Ed25519 PKCS#8 key is a valid key of the wrong type.
  const char* ed =
      "-----BEGIN PRIVATE "
      "KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
      "-----END PRIVATE KEY-----\n";
  auto r = EcPrivateKey::from_pem(ed);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail().find("P-256"), std::string::npos);
}

TEST(X509, CsrCarriesNameAndKeyAndVerifies) {
  auto key = EcPrivateKey::generate().value();
  auto csr = make_csr(key, "node-7").value();
  auto info = verify_csr(csr);
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->common_name, "node-7");
  EXPECT_EQ(info->public_key_der, key.public_key_der());
}

TEST(X509, GarbageAndTamperedCsrsAreRefused) {
  EXPECT_TRUE(verify_csr("garbage").error() == CryptoError::invalid_csr);
  EXPECT_TRUE(verify_csr(std::string(100000, 'A')).error() == CryptoError::invalid_csr);
  auto key = EcPrivateKey::generate().value();
  std::string csr = make_csr(key, "node-7").value();
  // Flip a character inside the base64 body: either it no longer parses or no longer verifies.
  const auto body = csr.find('\n') + 40;
  csr[body] = csr[body] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(verify_csr(csr));
}

TEST(X509, IssuedCertificateVerifiesAgainstItsCaOnly) {
  Ca ca = make_ca();
  auto node_key = EcPrivateKey::generate().value();
  auto cert = issue_certificate(ca.key, ca.cert, node_key.public_key_der(), leaf_spec("node-7"));
  ASSERT_TRUE(cert) << cert.error().message();
  EXPECT_EQ(cert->common_name(), "node-7");
  EXPECT_EQ(cert->issuer_common_name(), "lab CA");
  EXPECT_EQ(cert->public_key_der(), node_key.public_key_der());
  EXPECT_EQ(cert->serial().size(), 32u);
  EXPECT_FALSE(cert->is_ca());
  EXPECT_TRUE(ca.cert.is_ca());
  const auto now = std::chrono::system_clock::now();
  EXPECT_TRUE(verify_certificate(*cert, ca.cert, now));

  Ca other = make_ca("other CA");
  auto r = verify_certificate(*cert, other.cert, now);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error() == CryptoError::certificate_rejected);
}

TEST(X509, ExpiredAndNotYetValidAreRejected) {
  Ca ca = make_ca();
  auto key = EcPrivateKey::generate().value();
  auto cert = issue_certificate(ca.key, ca.cert, key.public_key_der(), leaf_spec("n", 2h)).value();
  const auto now = std::chrono::system_clock::now();
  auto late = verify_certificate(cert, ca.cert, now + 3h);
  ASSERT_FALSE(late);
  EXPECT_NE(late.error().detail().find("expired"), std::string::npos) << late.error().detail();
  EXPECT_FALSE(verify_certificate(cert, ca.cert, now - 2h));
}

TEST(X509, SerialsAreUniqueAndPemDerRoundTrip) {
  Ca ca = make_ca();
  auto key = EcPrivateKey::generate().value();
  auto a = issue_certificate(ca.key, ca.cert, key.public_key_der(), leaf_spec("a")).value();
  auto b = issue_certificate(ca.key, ca.cert, key.public_key_der(), leaf_spec("a")).value();
  EXPECT_NE(a.serial(), b.serial());
  EXPECT_EQ(Certificate::from_pem(a.pem()).value().der(), a.der());
  EXPECT_EQ(Certificate::from_der(a.der()).value().serial(), a.serial());
  auto chain = Certificate::chain_from_pem(a.pem() + ca.cert.pem()).value();
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[1].common_name(), "lab CA");
  EXPECT_TRUE(Certificate::from_pem("junk").error() == CryptoError::invalid_certificate);
  EXPECT_TRUE(Certificate::chain_from_pem("junk").error() == CryptoError::invalid_certificate);
}

TEST(X509, ValidityWindowIsKept) {
  Ca ca = make_ca();
  auto key = EcPrivateKey::generate().value();
  const auto spec = leaf_spec("n", 24h * 7);
  auto cert = issue_certificate(ca.key, ca.cert, key.public_key_der(), spec).value();
  EXPECT_EQ(std::chrono::floor<std::chrono::seconds>(cert.not_after()),
            std::chrono::floor<std::chrono::seconds>(spec.not_after));
}

TEST(X509, IssueRefusesNonP256SubjectKeysAndInvertedValidity) {
  Ca ca = make_ca();
  const auto ed = Ed25519PrivateKey::generate().value().public_key().raw();
  EXPECT_FALSE(issue_certificate(ca.key, ca.cert, ed, leaf_spec("n")));
  auto key = EcPrivateKey::generate().value();
  auto spec = leaf_spec("n");
  std::swap(spec.not_before, spec.not_after);
  EXPECT_FALSE(issue_certificate(ca.key, ca.cert, key.public_key_der(), spec));
}

TEST(X509, PinIsStableAndDistinguishesKeys) {
  Ca ca = make_ca();
  const std::string pin = spki_pin(ca.cert.public_key_der());
  EXPECT_EQ(pin.rfind("sha256:", 0), 0u);
  EXPECT_EQ(pin.size(), 7u + 43u);
  EXPECT_EQ(pin, spki_pin(ca.key.public_key_der()));
  EXPECT_NE(pin, spki_pin(make_ca().cert.public_key_der()));
}

}  // namespace

namespace lab::shared::crypto {
namespace {

TEST(Ecdsa, SignatureVerifiesOnlyForItsKeyAndMessage) {
  auto key = EcPrivateKey::generate().value();
  auto other = EcPrivateKey::generate().value();
  const std::string msg = "lab-key-proof-v1\njoin\nabc";
  auto sig = key.sign(as_bytes(msg)).value();
  EXPECT_TRUE(verify_ecdsa(key.public_key_der(), as_bytes(msg), sig));
  EXPECT_FALSE(verify_ecdsa(other.public_key_der(), as_bytes(msg), sig));
  EXPECT_FALSE(verify_ecdsa(key.public_key_der(), as_bytes(std::string("lab-key-proof-v1")), sig));
  Bytes flipped = sig;
  flipped[flipped.size() / 2] ^= 0x01;
  EXPECT_FALSE(verify_ecdsa(key.public_key_der(), as_bytes(msg), flipped));
  EXPECT_FALSE(verify_ecdsa(Bytes{1, 2, 3}, as_bytes(msg), sig));
  EXPECT_FALSE(verify_ecdsa(key.public_key_der(), as_bytes(msg), Bytes{}));
}

}  // namespace
}  // namespace lab::shared::crypto
