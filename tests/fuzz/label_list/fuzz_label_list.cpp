// Label lists ("k=v,k2=v2"): never crash; what parses formats back to an equal set.
#include "shared/labels/label.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's entry point
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto labels = lab::shared::labels::parse_list(text);
  if (!labels)
    return 0;
  auto again = lab::shared::labels::parse_list(lab::shared::labels::format_list(*labels));
  if (!again || *again != *labels)
    std::abort();
  return 0;
}
