#pragma once

#include "shared/crypto/bytes.hpp"
#include "shared/crypto/error.hpp"

#include <cstdint>

namespace lab::shared::crypto {

/// n bytes from OpenSSL's CSPRNG (RAND_bytes). Fails only if the generator cannot be seeded.
Result<Bytes> random_bytes(std::size_t n);
/// Fills `out`; same failure as above.
Result<void> random_fill(std::span<std::uint8_t> out);
/// A uniformly random 64-bit value (for jitter, ids); aborts if the CSPRNG fails, because a
/// process that cannot get randomness cannot go on safely.
std::uint64_t random_u64();

}  // namespace lab::shared::crypto
