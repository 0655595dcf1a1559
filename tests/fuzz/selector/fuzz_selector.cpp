// Selector parser: never crashes; whatever parses survives a round trip through to_string().
#include "shared/labels/selector.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's entry point
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto selector = lab::shared::labels::Selector::parse(text);
  if (!selector)
    return 0;
  auto again = lab::shared::labels::Selector::parse(selector->to_string());
  if (!again || !(*again == *selector))
    std::abort();
  lab::shared::labels::LabelSet labels{{"role", "web"}, {"env", "prod"}};
  (void)selector->matches(labels);
  return 0;
}
