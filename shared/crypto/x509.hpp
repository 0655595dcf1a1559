#pragma once

#include "shared/crypto/bytes.hpp"
#include "shared/crypto/error.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct evp_pkey_st;
struct x509_st;

namespace lab::shared::crypto {

using TimePoint = std::chrono::system_clock::time_point;

/// An ECDSA P-256 private key: the CA key, and each node's TLS key.
class EcPrivateKey {
 public:
  static Result<EcPrivateKey> generate();
  /// PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"); invalid_key unless it is a P-256 key.
  static Result<EcPrivateKey> from_pem(std::string_view pem);
  [[nodiscard]] std::string to_pem() const;
  /// The public key as DER SubjectPublicKeyInfo.
  [[nodiscard]] Bytes public_key_der() const;
  /// ECDSA with SHA-256 over `message`, DER-encoded: how a node proves it holds the key its
  /// certificate names (re-enrolment, renewal of an expired certificate).
  [[nodiscard]] Result<Bytes> sign(ByteView message) const;
  [[nodiscard]] evp_pkey_st* native() const noexcept { return key_.get(); }

 private:
  explicit EcPrivateKey(std::shared_ptr<evp_pkey_st> key) : key_(std::move(key)) {}
  std::shared_ptr<evp_pkey_st> key_;
};

/// True only when `signature` (DER ECDSA-SHA256) is `message` signed by the P-256 key whose
/// SubjectPublicKeyInfo is `spki_der`. Malformed keys and signatures are false.
bool verify_ecdsa(ByteView spki_der, ByteView message, ByteView signature);

/// "sha256:<base64url>" of a DER SubjectPublicKeyInfo: pins a CA without trusting on first use.
std::string spki_pin(ByteView spki_der);

/// A PEM PKCS#10 request signed by `key`, subject CN = `common_name`.
Result<std::string> make_csr(const EcPrivateKey& key, std::string_view common_name);

struct CsrInfo {
  std::string common_name;
  Bytes public_key_der;  // SubjectPublicKeyInfo
};
/// Parses a PEM CSR, checks its self-signature and that its key is P-256.
Result<CsrInfo> verify_csr(std::string_view pem);

enum class CertUsage { ca, server, client, server_and_client };

struct CertificateSpec {
  std::string common_name;
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  TimePoint not_before;
  TimePoint not_after;
  CertUsage usage = CertUsage::client;
};

/// An X.509 certificate. Cheap to copy (shared, immutable).
class Certificate {
 public:
  static Result<Certificate> from_pem(std::string_view pem);
  static Result<Certificate> from_der(ByteView der);
  /// Shares a certificate OpenSSL already parsed (e.g. a TLS peer's): takes a reference.
  static Certificate from_native(x509_st* cert);
  /// Every certificate of a PEM bundle, in order.
  static Result<std::vector<Certificate>> chain_from_pem(std::string_view pem);

  [[nodiscard]] std::string pem() const;
  [[nodiscard]] Bytes der() const;
  /// Lower-case hex of the serial number, no leading zeros.
  [[nodiscard]] std::string serial() const;
  [[nodiscard]] std::string common_name() const;
  [[nodiscard]] std::string issuer_common_name() const;
  [[nodiscard]] TimePoint not_before() const;
  [[nodiscard]] TimePoint not_after() const;
  [[nodiscard]] Bytes public_key_der() const;
  [[nodiscard]] bool is_ca() const;
  [[nodiscard]] x509_st* native() const noexcept { return cert_.get(); }

 private:
  explicit Certificate(std::shared_ptr<x509_st> cert) : cert_(std::move(cert)) {}
  friend Result<Certificate> self_signed_ca(const EcPrivateKey&, const CertificateSpec&);
  friend Result<Certificate> issue_certificate(const EcPrivateKey&, const Certificate&, ByteView,
                                               const CertificateSpec&);
  std::shared_ptr<x509_st> cert_;
};

/// A self-signed CA certificate for `key` (basicConstraints CA:TRUE, pathlen 0).
Result<Certificate> self_signed_ca(const EcPrivateKey& key, const CertificateSpec& spec);

/// A certificate for `subject_public_key_der`, signed by the CA, with a random 127-bit serial.
Result<Certificate> issue_certificate(const EcPrivateKey& ca_key, const Certificate& ca_cert,
                                      ByteView subject_public_key_der, const CertificateSpec& spec);

/// Checks `cert` chains to `ca` and is valid at `now`; certificate_rejected names the reason.
Result<void> verify_certificate(const Certificate& cert, const Certificate& ca, TimePoint now);

}  // namespace lab::shared::crypto
