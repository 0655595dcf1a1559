#include "shared/crypto/x509.hpp"

#include "shared/crypto/detail/openssl.hpp"
#include "shared/crypto/encoding.hpp"
#include "shared/crypto/hash.hpp"
#include "shared/crypto/random.hpp"

#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdlib>
#include <cstring>

namespace lab::shared::crypto {
namespace {

std::shared_ptr<X509> share_x509(X509* x) {
  return {x, [](X509* p) { X509_free(p); }};
}

Result<std::string> bio_string(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  if (n < 0 || data == nullptr)
    return detail::openssl_error(CryptoError::openssl_failed, "BIO read");
  return std::string(data, static_cast<std::size_t>(n));
}

detail::BioPtr mem_bio(std::string_view text) {
  return detail::BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

bool is_p256(EVP_PKEY* key) {
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
    return false;
  char group[64] = {};
  std::size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) !=
      1) {
    return false;
  }
  return std::strcmp(group, "prime256v1") == 0 || std::strcmp(group, "P-256") == 0;
}

Bytes spki_der(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int n = i2d_PUBKEY(key, &der);
  if (n <= 0)
    std::abort();
  Bytes out(der, der + n);
  OPENSSL_free(der);
  return out;
}

Result<detail::PkeyPtr> pkey_from_spki(ByteView der) {
  const unsigned char* p = der.data();
  EVP_PKEY* key = d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size()));
  if (key == nullptr)
    return detail::openssl_error(CryptoError::invalid_key, "public key DER");
  detail::PkeyPtr owned(key);
  if (!is_p256(key))
    return Error(CryptoError::invalid_key, "public key is not ECDSA P-256");
  return owned;
}

std::string name_entry(const X509_NAME* name, int nid) {
  const int idx = X509_NAME_get_index_by_NID(name, nid, -1);
  if (idx < 0)
    return {};
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0)
    return {};
  std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

TimePoint to_time_point(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1)
    return {};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

Result<void> add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) {
    return detail::openssl_error(CryptoError::openssl_failed, "certificate extension " + value);
  }
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1)
    return detail::openssl_error(CryptoError::openssl_failed, "X509_add_ext");
  return {};
}

Result<detail::X509Ptr> build(EVP_PKEY* subject_key, X509* issuer, EVP_PKEY* signing_key,
                              const CertificateSpec& spec) {
  if (spec.not_after <= spec.not_before) {
    return Error(CryptoError::invalid_certificate,
                 "certificate: not_after is not after not_before");
  }
  detail::X509Ptr cert(X509_new());
  if (!cert)
    return detail::openssl_error(CryptoError::openssl_failed, "X509_new");

  // 127-bit random positive serial (RFC 5280 allows up to 20 octets; top bit clear keeps it
  // positive).
  LAB_TRY_ASSIGN(Bytes serial_bytes, random_bytes(16));
  serial_bytes[0] &= 0x7f;
  serial_bytes[0] |= 0x40;  // fixed length, so every serial prints with 32 hex digits
  detail::BnPtr bn(BN_bin2bn(serial_bytes.data(), static_cast<int>(serial_bytes.size()), nullptr));
  if (!bn || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return detail::openssl_error(CryptoError::openssl_failed, "certificate serial");
  }

  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(spec.common_name.c_str()),
                                 -1, -1, 0) != 1) {
    return detail::openssl_error(CryptoError::invalid_certificate, "subject CN");
  }
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : subject);
  if (ASN1_TIME_set(X509_getm_notBefore(cert.get()),
                    std::chrono::system_clock::to_time_t(spec.not_before)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()),
                    std::chrono::system_clock::to_time_t(spec.not_after)) == nullptr ||
      X509_set_pubkey(cert.get(), subject_key) != 1) {
    return detail::openssl_error(CryptoError::openssl_failed, "certificate fields");
  }

  X509* issuer_cert = issuer != nullptr ? issuer : cert.get();
  switch (spec.usage) {
    case CertUsage::ca:
      LAB_TRY(
          add_ext(cert.get(), issuer_cert, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
      LAB_TRY(add_ext(cert.get(), issuer_cert, NID_key_usage, "critical,keyCertSign,cRLSign"));
      break;
    case CertUsage::server:
    case CertUsage::client:
    case CertUsage::server_and_client: {
      LAB_TRY(add_ext(cert.get(), issuer_cert, NID_basic_constraints, "critical,CA:FALSE"));
      LAB_TRY(add_ext(cert.get(), issuer_cert, NID_key_usage, "critical,digitalSignature"));
      const char* eku = spec.usage == CertUsage::server   ? "serverAuth"
                        : spec.usage == CertUsage::client ? "clientAuth"
                                                          : "serverAuth,clientAuth";
      LAB_TRY(add_ext(cert.get(), issuer_cert, NID_ext_key_usage, eku));
      break;
    }
  }
  LAB_TRY(add_ext(cert.get(), issuer_cert, NID_subject_key_identifier, "hash"));
  if (issuer != nullptr) {
    LAB_TRY(add_ext(cert.get(), issuer_cert, NID_authority_key_identifier, "keyid:always"));
  }
  std::string san;
  for (const auto& d : spec.dns_names)
    san += (san.empty() ? "" : ",") + std::string("DNS:") + d;
  for (const auto& ip : spec.ip_addresses)
    san += (san.empty() ? "" : ",") + std::string("IP:") + ip;
  if (!san.empty()) {
    LAB_TRY(add_ext(cert.get(), issuer_cert, NID_subject_alt_name, san));
  }
  if (X509_sign(cert.get(), signing_key, EVP_sha256()) <= 0) {
    return detail::openssl_error(CryptoError::openssl_failed, "X509_sign");
  }
  return cert;
}

}  // namespace

// ---- EcPrivateKey ---------------------------------------------------------------------------

Result<EcPrivateKey> EcPrivateKey::generate() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr)
    return detail::openssl_error(CryptoError::openssl_failed, "P-256 keygen");
  return EcPrivateKey(detail::share(detail::PkeyPtr(key)));
}

Result<EcPrivateKey> EcPrivateKey::from_pem(std::string_view pem) {
  auto bio = mem_bio(pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr)
    return detail::openssl_error(CryptoError::invalid_key, "private key PEM");
  detail::PkeyPtr owned(key);
  if (!is_p256(key))
    return Error(CryptoError::invalid_key, "private key is not ECDSA P-256");
  return EcPrivateKey(detail::share(std::move(owned)));
}

std::string EcPrivateKey::to_pem() const {
  detail::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    std::abort();
  }
  auto s = bio_string(bio.get());
  if (!s)
    std::abort();
  return std::move(*s);
}

Bytes EcPrivateKey::public_key_der() const {
  return spki_der(key_.get());
}

Result<Bytes> EcPrivateKey::sign(ByteView message) const {
  detail::MdCtxPtr ctx(EVP_MD_CTX_new());
  std::size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, message.data(), message.size()) != 1) {
    return detail::openssl_error(CryptoError::openssl_failed, "ECDSA sign");
  }
  Bytes sig(len);
  if (EVP_DigestSign(ctx.get(), sig.data(), &len, message.data(), message.size()) != 1)
    return detail::openssl_error(CryptoError::openssl_failed, "ECDSA sign");
  sig.resize(len);
  return sig;
}

bool verify_ecdsa(ByteView spki, ByteView message, ByteView signature) {
  auto key = pkey_from_spki(spki);
  if (!key) {
    detail::clear_errors();
    return false;
  }
  detail::MdCtxPtr ctx(EVP_MD_CTX_new());
  const bool ok =
      ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key->get()) == 1 &&
      EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(),
                       message.size()) == 1;
  detail::clear_errors();
  return ok;
}

std::string spki_pin(ByteView der) {
  const Digest d = sha256(der);
  return "sha256:" + base64url_encode(d);
}

// ---- CSR ------------------------------------------------------------------------------------

Result<std::string> make_csr(const EcPrivateKey& key, std::string_view common_name) {
  detail::X509ReqPtr req(X509_REQ_new());
  const std::string cn(common_name);
  if (!req || X509_REQ_set_version(req.get(), 0) != 1 ||
      X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req.get()), "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1 ||
      X509_REQ_set_pubkey(req.get(), key.native()) != 1 ||
      X509_REQ_sign(req.get(), key.native(), EVP_sha256()) <= 0) {
    return detail::openssl_error(CryptoError::openssl_failed, "CSR");
  }
  detail::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) {
    return detail::openssl_error(CryptoError::openssl_failed, "CSR PEM");
  }
  return bio_string(bio.get());
}

Result<CsrInfo> verify_csr(std::string_view pem) {
  if (pem.size() > std::size_t{64} * 1024)
    return Error(CryptoError::invalid_csr, "CSR larger than 64 KiB");
  auto bio = mem_bio(pem);
  detail::X509ReqPtr req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!req)
    return detail::openssl_error(CryptoError::invalid_csr, "CSR does not parse");
  EVP_PKEY* key = X509_REQ_get0_pubkey(req.get());
  if (key == nullptr || !is_p256(key)) {
    detail::clear_errors();
    return Error(CryptoError::invalid_csr, "CSR key is not ECDSA P-256");
  }
  if (X509_REQ_verify(req.get(), key) != 1) {
    detail::clear_errors();
    return Error(CryptoError::invalid_csr, "CSR self-signature does not verify");
  }
  return CsrInfo{name_entry(X509_REQ_get_subject_name(req.get()), NID_commonName), spki_der(key)};
}

// ---- Certificate ----------------------------------------------------------------------------

Result<Certificate> Certificate::from_pem(std::string_view pem) {
  auto bio = mem_bio(pem);
  X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  if (x == nullptr)
    return detail::openssl_error(CryptoError::invalid_certificate, "certificate PEM");
  return Certificate(share_x509(x));
}

Result<Certificate> Certificate::from_der(ByteView der) {
  const unsigned char* p = der.data();
  X509* x = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  if (x == nullptr)
    return detail::openssl_error(CryptoError::invalid_certificate, "certificate DER");
  return Certificate(share_x509(x));
}

Certificate Certificate::from_native(X509* cert) {
  X509_up_ref(cert);
  return Certificate(share_x509(cert));
}

Result<std::vector<Certificate>> Certificate::chain_from_pem(std::string_view pem) {
  auto bio = mem_bio(pem);
  std::vector<Certificate> out;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    out.push_back(Certificate(share_x509(x)));
  }
  detail::clear_errors();  // the loop ends on "no start line"
  if (out.empty())
    return Error(CryptoError::invalid_certificate, "no certificate in PEM");
  return out;
}

std::string Certificate::pem() const {
  detail::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert_.get()) != 1)
    std::abort();
  auto s = bio_string(bio.get());
  if (!s)
    std::abort();
  return std::move(*s);
}

Bytes Certificate::der() const {
  unsigned char* der = nullptr;
  const int n = i2d_X509(cert_.get(), &der);
  if (n <= 0)
    std::abort();
  Bytes out(der, der + n);
  OPENSSL_free(der);
  return out;
}

std::string Certificate::serial() const {
  detail::BnPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert_.get()), nullptr));
  if (!bn)
    std::abort();
  char* hex = BN_bn2hex(bn.get());
  std::string out(hex);
  OPENSSL_free(hex);
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const auto nz = out.find_first_not_of('0');
  return nz == std::string::npos ? "0" : out.substr(nz);
}

std::string Certificate::common_name() const {
  return name_entry(X509_get_subject_name(cert_.get()), NID_commonName);
}
std::string Certificate::issuer_common_name() const {
  return name_entry(X509_get_issuer_name(cert_.get()), NID_commonName);
}
TimePoint Certificate::not_before() const {
  return to_time_point(X509_get0_notBefore(cert_.get()));
}
TimePoint Certificate::not_after() const {
  return to_time_point(X509_get0_notAfter(cert_.get()));
}
Bytes Certificate::public_key_der() const {
  return spki_der(X509_get0_pubkey(cert_.get()));
}
bool Certificate::is_ca() const {
  return X509_check_ca(cert_.get()) != 0;
}

Result<Certificate> self_signed_ca(const EcPrivateKey& key, const CertificateSpec& spec) {
  CertificateSpec ca_spec = spec;
  ca_spec.usage = CertUsage::ca;
  LAB_TRY_ASSIGN(detail::X509Ptr cert, build(key.native(), nullptr, key.native(), ca_spec));
  return Certificate(share_x509(cert.release()));
}

Result<Certificate> issue_certificate(const EcPrivateKey& ca_key, const Certificate& ca_cert,
                                      ByteView subject_public_key_der,
                                      const CertificateSpec& spec) {
  LAB_TRY_ASSIGN(detail::PkeyPtr subject, pkey_from_spki(subject_public_key_der));
  if (spec.usage == CertUsage::ca) {
    return Error(CryptoError::invalid_certificate,
                 "issue_certificate does not issue CA certificates");
  }
  LAB_TRY_ASSIGN(detail::X509Ptr cert,
                 build(subject.get(), ca_cert.native(), ca_key.native(), spec));
  return Certificate(share_x509(cert.release()));
}

Result<void> verify_certificate(const Certificate& cert, const Certificate& ca, TimePoint now) {
  detail::X509StorePtr store(X509_STORE_new());
  detail::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!store || !ctx || X509_STORE_add_cert(store.get(), ca.native()) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), cert.native(), nullptr) != 1) {
    return detail::openssl_error(CryptoError::openssl_failed, "X509 store");
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, std::chrono::system_clock::to_time_t(now));
  if (X509_verify_cert(ctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    detail::clear_errors();
    return Error(CryptoError::certificate_rejected, X509_verify_cert_error_string(err));
  }
  return {};
}

}  // namespace lab::shared::crypto
