#pragma once

#include "shared/crypto/bytes.hpp"
#include "shared/crypto/keys.hpp"
#include "shared/errors/error.hpp"

#include <string>
#include <string_view>

namespace lab::shared::envelope {

enum class EnvelopeError {
  truncated = 1,        // fewer bytes than the header or the declared lengths need
  bad_magic,            // not an envelope
  unsupported_version,  // an envelope version this program does not read
  too_large,            // payload past kMaxPayload
  trailing_bytes,       // bytes after the signature
  invalid_kind,         // kind empty or not printable ASCII
  unknown_key,          // signed by another key than the one expected
  bad_signature,        // the signature does not verify: some byte was changed
  wrong_kind,           // a valid envelope of another kind (a manifest offered as a bundle)
};
const boost::system::error_category& envelope_category() noexcept;
inline boost::system::error_code make_error_code(EnvelopeError e) noexcept {
  return {static_cast<int>(e), envelope_category()};
}

inline constexpr std::size_t kMaxPayload = std::size_t{64} * 1024 * 1024;
inline constexpr std::size_t kMaxKind = 32;

/// A signed envelope: payload bytes, Ed25519 signature and the id of the signing key.
/// Wire format (big-endian lengths):
///   "LABE" | version u8 (=1) | kind length u8 | kind | key id (8 raw bytes)
///   | payload length u32 | payload | signature (64)
/// The signature covers every byte before it, so the kind and key id are signed too: a
/// manifest signed by the appliance can never pass for a bundle. Stored and relayed verbatim.
struct Envelope {
  std::string kind;    // "bundle", "manifest", ...
  std::string key_id;  // hex, as Ed25519PublicKey::key_id()
  crypto::Bytes payload;
  crypto::Signature signature{};
};

/// Signs `payload` and returns the serialised envelope.
Result<crypto::Bytes> seal(const crypto::Ed25519PrivateKey& key, std::string_view kind,
                           crypto::ByteView payload);

/// Parses the structure only; says nothing about authenticity.
Result<Envelope> parse(crypto::ByteView bytes);
crypto::Bytes serialize(const Envelope& envelope);

/// Parses and verifies: the key id must be `key`'s, the signature must verify and the kind
/// must be `kind`. The returned envelope is authentic.
Result<Envelope> open(crypto::ByteView bytes, const crypto::Ed25519PublicKey& key,
                      std::string_view kind);

}  // namespace lab::shared::envelope

template <>
struct boost::system::is_error_code_enum<lab::shared::envelope::EnvelopeError> : std::true_type {};
