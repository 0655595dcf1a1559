#pragma once

#include "shared/crypto/bytes.hpp"
#include "shared/crypto/error.hpp"

#include <string>
#include <string_view>

namespace lab::shared::crypto {

std::string hex_encode(ByteView bytes);
/// Accepts upper or lower case; fails with invalid_encoding naming the offending position.
Result<Bytes> hex_decode(std::string_view text);

/// RFC 4648 §5 alphabet, no padding.
std::string base64url_encode(ByteView bytes);
/// Accepts input with or without '=' padding; rejects any other alphabet and non-canonical
/// trailing bits, so one byte string has exactly one encoding.
Result<Bytes> base64url_decode(std::string_view text);

}  // namespace lab::shared::crypto
