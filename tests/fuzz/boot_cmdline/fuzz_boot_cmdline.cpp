// Kernel command lines for `labd boot`: never crash; what parses is consistent with the lenient
// reading used to report failures, and error text never carries control bytes.
#include "agent/boot/cmdline.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's entry point
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lab::agent::boot;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto target = report_target(text);
  auto p = parse_cmdline(text);
  if (!p) {
    const std::string detail = p.error().detail();  // error() is a copy
    for (const char c : detail) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7f)
        std::abort();
    }
    return 0;
  }
  if (p->mac != target.mac || p->server != target.server || p->join_text.empty())
    std::abort();
  if (!p->mac.empty() && canonical_mac(p->mac) != p->mac)
    std::abort();
  return 0;
}
