#include "shared/crypto/detail/openssl.hpp"

#include <openssl/crypto.h>
#include <openssl/err.h>

namespace lab::shared::crypto {

void cleanse(void* p, std::size_t n) noexcept {
  OPENSSL_cleanse(p, n);
}

const boost::system::error_category& crypto_category() noexcept {
  static const ErrorCategory<CryptoError> kCategory("lab.crypto",
                                                    [](CryptoError e) noexcept -> const char* {
                                                      switch (e) {
                                                        case CryptoError::random_failed:
                                                          return "random generator failed";
                                                        case CryptoError::invalid_key:
                                                          return "invalid key";
                                                        case CryptoError::invalid_encoding:
                                                          return "invalid encoding";
                                                        case CryptoError::bad_length:
                                                          return "bad length";
                                                        case CryptoError::bad_signature:
                                                          return "signature does not verify";
                                                        case CryptoError::decrypt_failed:
                                                          return "decryption failed";
                                                        case CryptoError::invalid_csr:
                                                          return "invalid certificate request";
                                                        case CryptoError::invalid_certificate:
                                                          return "invalid certificate";
                                                        case CryptoError::certificate_rejected:
                                                          return "certificate rejected";
                                                        case CryptoError::openssl_failed:
                                                          return "OpenSSL call failed";
                                                      }
                                                      return "crypto error";
                                                    });
  return kCategory;
}

namespace detail {

Error openssl_error(CryptoError code, std::string_view what) {
  std::string detail(what);
  unsigned long err = 0;
  bool first = true;
  while ((err = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof buf);
    detail += first ? ": " : "; ";
    detail += buf;
    first = false;
  }
  return {code, std::move(detail)};
}

void clear_errors() noexcept {
  ERR_clear_error();
}

std::shared_ptr<EVP_PKEY> share(PkeyPtr key) {
  return {key.release(), [](EVP_PKEY* p) { EVP_PKEY_free(p); }};
}

}  // namespace detail
}  // namespace lab::shared::crypto
