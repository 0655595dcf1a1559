#pragma once

#include "shared/crypto/bytes.hpp"
#include "shared/crypto/error.hpp"

#include <array>
#include <memory>
#include <string>

struct evp_pkey_st;

namespace lab::shared::crypto {

using Signature = std::array<std::uint8_t, 64>;

/// An Ed25519 public key (bundle signature checks). Cheap to copy.
class Ed25519PublicKey {
 public:
  static Result<Ed25519PublicKey> from_raw(ByteView raw);
  [[nodiscard]] std::array<std::uint8_t, 32> raw() const;
  /// True only when `signature` is a valid signature of `message` by this key.
  [[nodiscard]] bool verify(ByteView message, ByteView signature) const;
  /// First 8 bytes of SHA-256(raw key), hex: names the key inside envelopes.
  [[nodiscard]] std::string key_id() const;

 private:
  explicit Ed25519PublicKey(std::shared_ptr<evp_pkey_st> key) : key_(std::move(key)) {}
  friend class Ed25519PrivateKey;
  std::shared_ptr<evp_pkey_st> key_;
};

/// An Ed25519 private key (the coordinator's bundle signing key).
class Ed25519PrivateKey {
 public:
  static Result<Ed25519PrivateKey> generate();
  /// From the 32-byte seed that seed() returns.
  static Result<Ed25519PrivateKey> from_seed(ByteView seed);
  [[nodiscard]] SecretBytes seed() const;
  [[nodiscard]] Ed25519PublicKey public_key() const;
  [[nodiscard]] Signature sign(ByteView message) const;

 private:
  explicit Ed25519PrivateKey(std::shared_ptr<evp_pkey_st> key) : key_(std::move(key)) {}
  std::shared_ptr<evp_pkey_st> key_;
};

/// An X25519 public key: what secrets are sealed to.
class X25519PublicKey {
 public:
  static Result<X25519PublicKey> from_raw(ByteView raw);
  [[nodiscard]] std::array<std::uint8_t, 32> raw() const;
  [[nodiscard]] evp_pkey_st* native() const noexcept { return key_.get(); }

 private:
  friend class X25519PrivateKey;
  explicit X25519PublicKey(std::shared_ptr<evp_pkey_st> key) : key_(std::move(key)) {}
  std::shared_ptr<evp_pkey_st> key_;
};

/// An X25519 private key: a node's sealing key.
class X25519PrivateKey {
 public:
  static Result<X25519PrivateKey> generate();
  static Result<X25519PrivateKey> from_raw(ByteView raw);
  [[nodiscard]] SecretBytes raw() const;
  [[nodiscard]] X25519PublicKey public_key() const;
  [[nodiscard]] evp_pkey_st* native() const noexcept { return key_.get(); }

 private:
  explicit X25519PrivateKey(std::shared_ptr<evp_pkey_st> key) : key_(std::move(key)) {}
  std::shared_ptr<evp_pkey_st> key_;
};

/// Sealed box: an ephemeral X25519 key agrees a secret with `to`; HKDF-SHA256 (salt: both
/// public keys) derives an AES-256-GCM key and nonce; `aad` is authenticated, not encrypted.
/// Layout: version(1) | ephemeral public key(32) | ciphertext | tag(16).
Result<Bytes> seal(const X25519PublicKey& to, ByteView plaintext, ByteView aad);
/// Opens a sealed box; decrypt_failed when the key, the AAD or any byte is wrong.
Result<SecretBytes> open(const X25519PrivateKey& key, ByteView sealed, ByteView aad);

inline constexpr std::size_t kSealOverhead = 1 + 32 + 16;

}  // namespace lab::shared::crypto
