// Join strings and tokens: never crash; what parses formats back to the same parts.
#include "shared/protocol/protocol.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's entry point
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lab::shared::protocol;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)parse_token(text);
  auto js = parse_join_string(text);
  if (!js)
    return 0;
  auto again = parse_join_string(format_join_string(*js));
  if (!again || again->url != js->url || again->ca_pin != js->ca_pin ||
      again->token.to_string() != js->token.to_string()) {
    std::abort();
  }
  return 0;
}
