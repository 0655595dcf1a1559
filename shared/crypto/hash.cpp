#include "shared/crypto/hash.hpp"

#include "shared/crypto/detail/openssl.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <cstdlib>

namespace lab::shared::crypto {
namespace {

// SHA-256 failing means OpenSSL is broken (out of memory or a bad provider): not recoverable.
void check(int ok) {
  if (ok != 1)
    std::abort();
}

}  // namespace

Digest sha256(ByteView data) {
  Digest out{};
  unsigned int len = 0;
  check(EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr));
  return out;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
  if (!ctx_)
    std::abort();
  check(EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr));
}
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;
Sha256::~Sha256() = default;

Sha256& Sha256::update(ByteView data) {
  check(EVP_DigestUpdate(ctx_.get(), data.data(), data.size()));
  return *this;
}

Digest Sha256::finish() {
  Digest out{};
  unsigned int len = 0;
  check(EVP_DigestFinal_ex(ctx_.get(), out.data(), &len));
  check(EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr));
  return out;
}

Digest hmac_sha256(ByteView key, ByteView data) {
  Digest out{};
  std::size_t len = 0;
  static const std::uint8_t kEmpty = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.empty() ? &kEmpty : key.data(),
                key.size(), data.data(), data.size(), out.data(), out.size(), &len) == nullptr) {
    std::abort();
  }
  return out;
}

bool constant_time_equal(ByteView a, ByteView b) noexcept {
  if (a.size() != b.size())
    return false;
  if (a.empty())
    return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Result<SecretBytes> hkdf_sha256(ByteView ikm, ByteView salt, ByteView info, std::size_t length) {
  // Fetching an algorithm walks the provider tables: do it once per process (kept for its life).
  static EVP_KDF* const kHkdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (kHkdf == nullptr) {
    return detail::openssl_error(CryptoError::openssl_failed, "EVP_KDF_fetch(HKDF)");
  }
  std::unique_ptr<EVP_KDF_CTX, void (*)(EVP_KDF_CTX*)> ctx(EVP_KDF_CTX_new(kHkdf),
                                                           EVP_KDF_CTX_free);
  if (!ctx)
    return detail::openssl_error(CryptoError::openssl_failed, "EVP_KDF_CTX_new");

  char digest[] = "SHA256";
  // OSSL_PARAM takes non-const pointers; OpenSSL does not write through them.
  auto* ikm_p =
      const_cast<std::uint8_t*>(ikm.data());  // NOLINT(cppcoreguidelines-pro-type-const-cast)
  auto* salt_p =
      const_cast<std::uint8_t*>(salt.data());  // NOLINT(cppcoreguidelines-pro-type-const-cast)
  auto* info_p =
      const_cast<std::uint8_t*>(info.data());  // NOLINT(cppcoreguidelines-pro-type-const-cast)
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, ikm_p, ikm.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt_p, salt.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info_p, info.size()),
      OSSL_PARAM_construct_end(),
  };
  SecretBytes out(length);
  if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1) {
    return detail::openssl_error(CryptoError::openssl_failed, "HKDF derive");
  }
  return out;
}

}  // namespace lab::shared::crypto
