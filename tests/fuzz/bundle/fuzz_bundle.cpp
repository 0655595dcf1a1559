// Bundle payloads: never crash; what parses serialises to a fixed point.
#include "shared/protocol/protocol.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's entry point
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lab::shared::protocol;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto bundle = parse_bundle(text);
  if (!bundle)
    return 0;
  const std::string once = serialize(*bundle);
  auto again = parse_bundle(once);
  if (!again || serialize(*again) != once)
    std::abort();
  return 0;
}
