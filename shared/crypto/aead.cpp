#include "shared/crypto/aead.hpp"

#include "shared/crypto/detail/openssl.hpp"
#include "shared/crypto/random.hpp"

#include <climits>

namespace lab::shared::crypto {
namespace {

Result<void> check_params(ByteView key, ByteView nonce) {
  if (key.size() != kAeadKeySize) {
    return Error(CryptoError::invalid_key,
                 "AES-256-GCM: key of " + std::to_string(key.size()) + " bytes, 32 expected");
  }
  if (nonce.size() != kAeadNonceSize) {
    return Error(CryptoError::bad_length,
                 "AES-256-GCM: nonce of " + std::to_string(nonce.size()) + " bytes, 12 expected");
  }
  return {};
}

}  // namespace

Result<Bytes> aes256gcm_encrypt(ByteView key, ByteView nonce, ByteView plaintext, ByteView aad) {
  LAB_TRY(check_params(key, nonce));
  if (plaintext.size() > INT_MAX - kAeadTagSize || aad.size() > INT_MAX) {
    return Error(CryptoError::bad_length, "AES-256-GCM: input too large");
  }
  detail::CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  Bytes out(plaintext.size() + kAeadTagSize);
  int len = 0;
  int total = 0;
  if (!ctx ||
      EVP_EncryptInit_ex2(ctx.get(), EVP_aes_256_gcm(), key.data(), nonce.data(), nullptr) != 1 ||
      (!aad.empty() && EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(),
                                         static_cast<int>(aad.size())) != 1) ||
      EVP_EncryptUpdate(ctx.get(), out.data(), &len, plaintext.data(),
                        static_cast<int>(plaintext.size())) != 1) {
    return detail::openssl_error(CryptoError::openssl_failed, "AES-256-GCM encrypt");
  }
  total = len;
  if (EVP_EncryptFinal_ex(ctx.get(), out.data() + total, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kAeadTagSize),
                          out.data() + plaintext.size()) != 1) {
    return detail::openssl_error(CryptoError::openssl_failed, "AES-256-GCM finish");
  }
  return out;
}

Result<SecretBytes> aes256gcm_decrypt(ByteView key, ByteView nonce, ByteView ciphertext_and_tag,
                                      ByteView aad) {
  LAB_TRY(check_params(key, nonce));
  if (ciphertext_and_tag.size() < kAeadTagSize) {
    return Error(CryptoError::bad_length, "AES-256-GCM: shorter than the tag");
  }
  if (ciphertext_and_tag.size() > INT_MAX || aad.size() > INT_MAX) {
    return Error(CryptoError::bad_length, "AES-256-GCM: input too large");
  }
  const std::size_t n = ciphertext_and_tag.size() - kAeadTagSize;
  detail::CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  SecretBytes out(n);
  int len = 0;
  // The tag is copied: EVP_CTRL_GCM_SET_TAG takes a non-const pointer.
  std::uint8_t tag[kAeadTagSize];
  std::copy_n(ciphertext_and_tag.data() + n, kAeadTagSize, tag);
  if (!ctx ||
      EVP_DecryptInit_ex2(ctx.get(), EVP_aes_256_gcm(), key.data(), nonce.data(), nullptr) != 1 ||
      (!aad.empty() && EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(),
                                         static_cast<int>(aad.size())) != 1) ||
      (n > 0 && EVP_DecryptUpdate(ctx.get(), out.data(), &len, ciphertext_and_tag.data(),
                                  static_cast<int>(n)) != 1) ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kAeadTagSize), tag) !=
          1) {
    return detail::openssl_error(CryptoError::openssl_failed, "AES-256-GCM decrypt");
  }
  std::uint8_t final_block[16];
  if (EVP_DecryptFinal_ex(ctx.get(), final_block, &len) != 1) {
    detail::clear_errors();
    return Error(CryptoError::decrypt_failed, "AES-256-GCM: authentication failed");
  }
  return out;
}

Result<Bytes> wrap(ByteView key, ByteView plaintext, ByteView aad) {
  LAB_TRY_ASSIGN(Bytes nonce, random_bytes(kAeadNonceSize));
  LAB_TRY_ASSIGN(Bytes body, aes256gcm_encrypt(key, nonce, plaintext, aad));
  nonce.insert(nonce.end(), body.begin(), body.end());
  return nonce;
}

Result<SecretBytes> unwrap(ByteView key, ByteView wrapped, ByteView aad) {
  if (wrapped.size() < kWrapOverhead) {
    return Error(CryptoError::bad_length, "wrapped data: " + std::to_string(wrapped.size()) +
                                              " bytes, at least " + std::to_string(kWrapOverhead) +
                                              " expected");
  }
  return aes256gcm_decrypt(key, wrapped.first(kAeadNonceSize), wrapped.subspan(kAeadNonceSize),
                           aad);
}

}  // namespace lab::shared::crypto
