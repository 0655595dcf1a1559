#pragma once

#include "shared/crypto/bytes.hpp"
#include "shared/crypto/error.hpp"

#include <array>
#include <memory>

struct evp_md_ctx_st;

namespace lab::shared::crypto {

using Digest = std::array<std::uint8_t, 32>;

Digest sha256(ByteView data);
inline Digest sha256(std::string_view data) {
  return sha256(as_bytes(data));
}

/// Incremental SHA-256 for streams (files, hash chains).
class Sha256 {
 public:
  Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  ~Sha256();
  Sha256& update(ByteView data);
  Sha256& update(std::string_view data) { return update(as_bytes(data)); }
  /// Returns the digest; the object is reset and may be reused.
  Digest finish();

 private:
  std::unique_ptr<evp_md_ctx_st, void (*)(evp_md_ctx_st*)> ctx_;
};

Digest hmac_sha256(ByteView key, ByteView data);

/// Compares in time that depends only on the lengths, never on where the bytes differ.
bool constant_time_equal(ByteView a, ByteView b) noexcept;

/// HKDF-SHA256 (RFC 5869): extract with `salt`, expand with `info` to `length` bytes.
Result<SecretBytes> hkdf_sha256(ByteView ikm, ByteView salt, ByteView info, std::size_t length);

}  // namespace lab::shared::crypto
