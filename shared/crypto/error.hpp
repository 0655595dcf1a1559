#pragma once

#include "shared/errors/error.hpp"

namespace lab::shared::crypto {

enum class CryptoError {
  random_failed = 1,     // the CSPRNG refused
  invalid_key,           // key bytes or PEM that do not make a key of the expected type
  invalid_encoding,      // hex or base64url that does not decode
  bad_length,            // input shorter or longer than the format allows
  bad_signature,         // a signature that does not verify
  decrypt_failed,        // authenticated decryption failed: wrong key, AAD or tampered bytes
  invalid_csr,           // a CSR that does not parse, is not self-signed or has the wrong key
  invalid_certificate,   // a certificate that does not parse
  certificate_rejected,  // a certificate that does not chain to the CA, or is expired
  openssl_failed,        // an OpenSSL call failed unexpectedly (detail has its error queue)
};
const boost::system::error_category& crypto_category() noexcept;
inline boost::system::error_code make_error_code(CryptoError e) noexcept {
  return {static_cast<int>(e), crypto_category()};
}

}  // namespace lab::shared::crypto

template <>
struct boost::system::is_error_code_enum<lab::shared::crypto::CryptoError> : std::true_type {};
