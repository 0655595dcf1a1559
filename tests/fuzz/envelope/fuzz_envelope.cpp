// Envelope parser and verifier: never crash; parse → serialize → parse is the identity; only
// envelopes signed by the fixed key open.
#include "shared/envelope/envelope.hpp"

#include <cstdint>
#include <cstdlib>

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's entry point
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lab::shared;
  static const auto kKey = crypto::Ed25519PrivateKey::from_seed(crypto::Bytes(32, 7)).value();
  const crypto::ByteView bytes(data, size);
  auto env = envelope::parse(bytes);
  if (!env)
    return 0;
  const crypto::Bytes again = envelope::serialize(*env);
  if (again.size() != size || !std::equal(again.begin(), again.end(), data))
    std::abort();
  (void)envelope::open(bytes, kKey.public_key(), "bundle");
  return 0;
}
