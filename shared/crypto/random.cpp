#include "shared/crypto/random.hpp"

#include "shared/crypto/detail/openssl.hpp"

#include <climits>
#include <openssl/rand.h>

#include <cstdlib>

namespace lab::shared::crypto {

Result<void> random_fill(std::span<std::uint8_t> out) {
  // RAND_bytes takes an int length; fill in chunks.
  std::size_t done = 0;
  while (done < out.size()) {
    const std::size_t chunk = std::min<std::size_t>(out.size() - done, INT_MAX);
    if (RAND_bytes(out.data() + done, static_cast<int>(chunk)) != 1) {
      return detail::openssl_error(CryptoError::random_failed, "RAND_bytes");
    }
    done += chunk;
  }
  return {};
}

Result<Bytes> random_bytes(std::size_t n) {
  Bytes out(n);
  LAB_TRY(random_fill(out));
  return out;
}

std::uint64_t random_u64() {
  std::uint64_t v = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v) != 1) {
    std::abort();
  }
  return v;
}

}  // namespace lab::shared::crypto
