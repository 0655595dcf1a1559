#pragma once

#include "shared/crypto/bytes.hpp"
#include "shared/crypto/error.hpp"

namespace lab::shared::crypto {

inline constexpr std::size_t kAeadKeySize = 32;
inline constexpr std::size_t kAeadNonceSize = 12;
inline constexpr std::size_t kAeadTagSize = 16;

/// AES-256-GCM with a caller-chosen nonce: ciphertext | tag(16). Never reuse a nonce with a key.
Result<Bytes> aes256gcm_encrypt(ByteView key, ByteView nonce, ByteView plaintext, ByteView aad);
/// Inverse of the above; decrypt_failed when the tag does not verify.
Result<SecretBytes> aes256gcm_decrypt(ByteView key, ByteView nonce, ByteView ciphertext_and_tag,
                                      ByteView aad);

/// Encrypts with a fresh random nonce: nonce(12) | ciphertext | tag(16). For data at rest
/// (secrets in the coordinator store, node keys under the data key).
Result<Bytes> wrap(ByteView key, ByteView plaintext, ByteView aad);
/// Inverse of wrap(); decrypt_failed when the key, the AAD or any byte is wrong.
Result<SecretBytes> unwrap(ByteView key, ByteView wrapped, ByteView aad);

inline constexpr std::size_t kWrapOverhead = kAeadNonceSize + kAeadTagSize;

}  // namespace lab::shared::crypto
