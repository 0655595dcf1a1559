#include "shared/envelope/envelope.hpp"

#include "shared/crypto/encoding.hpp"

#include <algorithm>

namespace lab::shared::envelope {
namespace {

constexpr std::uint8_t kMagic[4] = {'L', 'A', 'B', 'E'};
constexpr std::uint8_t kVersion = 1;
constexpr std::size_t kKeyIdSize = 8;
constexpr std::size_t kSignatureSize = 64;

void put_u32(crypto::Bytes& out, std::uint32_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 24));
  out.push_back(static_cast<std::uint8_t>(v >> 16));
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}

Result<void> check_kind(std::string_view kind) {
  if (kind.empty() || kind.size() > kMaxKind ||
      !std::all_of(kind.begin(), kind.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
    return Error(
        EnvelopeError::invalid_kind,
        "envelope kind must be 1 to " + std::to_string(kMaxKind) + " printable ASCII characters");
  }
  return {};
}

// Everything the signature covers: the header and the payload.
Result<crypto::Bytes> signed_part(std::string_view kind, std::string_view key_id_hex,
                                  crypto::ByteView payload) {
  LAB_TRY(check_kind(kind));
  if (payload.size() > kMaxPayload) {
    return Error(EnvelopeError::too_large, "payload of " + std::to_string(payload.size()) +
                                               " bytes exceeds " + std::to_string(kMaxPayload));
  }
  LAB_TRY_ASSIGN(crypto::Bytes key_id, crypto::hex_decode(key_id_hex));
  if (key_id.size() != kKeyIdSize) {
    return Error(EnvelopeError::unknown_key, "key id must be 8 bytes");
  }
  crypto::Bytes out;
  out.reserve(4 + 2 + kind.size() + kKeyIdSize + 4 + payload.size() + kSignatureSize);
  out.insert(out.end(), std::begin(kMagic), std::end(kMagic));
  out.push_back(kVersion);
  out.push_back(static_cast<std::uint8_t>(kind.size()));
  out.insert(out.end(), kind.begin(), kind.end());
  out.insert(out.end(), key_id.begin(), key_id.end());
  put_u32(out, static_cast<std::uint32_t>(payload.size()));
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

}  // namespace

const boost::system::error_category& envelope_category() noexcept {
  static const ErrorCategory<EnvelopeError> kCategory(
      "lab.envelope", [](EnvelopeError e) noexcept -> const char* {
        switch (e) {
          case EnvelopeError::truncated:
            return "envelope truncated";
          case EnvelopeError::bad_magic:
            return "not an envelope";
          case EnvelopeError::unsupported_version:
            return "unsupported envelope version";
          case EnvelopeError::too_large:
            return "envelope payload too large";
          case EnvelopeError::trailing_bytes:
            return "bytes after the envelope";
          case EnvelopeError::invalid_kind:
            return "invalid envelope kind";
          case EnvelopeError::unknown_key:
            return "envelope signed by an unknown key";
          case EnvelopeError::bad_signature:
            return "envelope signature does not verify";
          case EnvelopeError::wrong_kind:
            return "envelope of another kind";
        }
        return "envelope error";
      });
  return kCategory;
}

Result<crypto::Bytes> seal(const crypto::Ed25519PrivateKey& key, std::string_view kind,
                           crypto::ByteView payload) {
  LAB_TRY_ASSIGN(crypto::Bytes out, signed_part(kind, key.public_key().key_id(), payload));
  const crypto::Signature sig = key.sign(out);
  out.insert(out.end(), sig.begin(), sig.end());
  return out;
}

Result<Envelope> parse(crypto::ByteView bytes) {
  std::size_t pos = 0;
  auto need = [&](std::size_t n, const char* what) -> Result<void> {
    if (bytes.size() - pos < n) {
      return Error(EnvelopeError::truncated, std::string("envelope ends inside the ") + what +
                                                 " (" + std::to_string(bytes.size()) + " bytes)");
    }
    return {};
  };
  LAB_TRY(need(4, "magic"));
  if (!std::equal(std::begin(kMagic), std::end(kMagic), bytes.begin())) {
    return Error(EnvelopeError::bad_magic, "envelope does not start with \"LABE\"");
  }
  pos = 4;
  LAB_TRY(need(2, "header"));
  if (bytes[pos] != kVersion) {
    return Error(EnvelopeError::unsupported_version,
                 "envelope version " + std::to_string(bytes[pos]) + ", this program reads 1");
  }
  const std::size_t kind_len = bytes[pos + 1];
  pos += 2;
  LAB_TRY(need(kind_len, "kind"));
  Envelope env;
  env.kind.assign(reinterpret_cast<const char*>(bytes.data() + pos), kind_len);
  LAB_TRY(check_kind(env.kind));
  pos += kind_len;
  LAB_TRY(need(kKeyIdSize, "key id"));
  env.key_id = crypto::hex_encode(bytes.subspan(pos, kKeyIdSize));
  pos += kKeyIdSize;
  LAB_TRY(need(4, "payload length"));
  const std::size_t len = (std::size_t{bytes[pos]} << 24) | (std::size_t{bytes[pos + 1]} << 16) |
                          (std::size_t{bytes[pos + 2]} << 8) | std::size_t{bytes[pos + 3]};
  pos += 4;
  if (len > kMaxPayload) {
    return Error(EnvelopeError::too_large, "declared payload of " + std::to_string(len) + " bytes");
  }
  LAB_TRY(need(len, "payload"));
  env.payload.assign(bytes.begin() + static_cast<std::ptrdiff_t>(pos),
                     bytes.begin() + static_cast<std::ptrdiff_t>(pos + len));
  pos += len;
  LAB_TRY(need(kSignatureSize, "signature"));
  std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(pos), kSignatureSize,
              env.signature.begin());
  pos += kSignatureSize;
  if (pos != bytes.size()) {
    return Error(EnvelopeError::trailing_bytes,
                 std::to_string(bytes.size() - pos) + " bytes after the signature");
  }
  return env;
}

crypto::Bytes serialize(const Envelope& envelope) {
  auto out = signed_part(envelope.kind, envelope.key_id, envelope.payload);
  if (!out) {
    return {};  // only reachable with a hand-built invalid Envelope; parse() never yields one
  }
  out->insert(out->end(), envelope.signature.begin(), envelope.signature.end());
  return std::move(*out);
}

Result<Envelope> open(crypto::ByteView bytes, const crypto::Ed25519PublicKey& key,
                      std::string_view kind) {
  LAB_TRY_ASSIGN(Envelope env, parse(bytes));
  const std::string expected = key.key_id();
  if (env.key_id != expected) {
    return Error(EnvelopeError::unknown_key,
                 "envelope signed by key " + env.key_id + ", expected " + expected);
  }
  const crypto::ByteView signed_bytes = bytes.first(bytes.size() - kSignatureSize);
  if (!key.verify(signed_bytes, env.signature)) {
    return Error(EnvelopeError::bad_signature, "envelope signature does not verify");
  }
  if (env.kind != kind) {
    return Error(EnvelopeError::wrong_kind,
                 "envelope of kind '" + env.kind + "', expected '" + std::string(kind) + "'");
  }
  return env;
}

}  // namespace lab::shared::envelope
