// POST /boot/progress bodies: never crash; what parses is clean (canonical MAC, known stage,
// printable bounded detail).
#include "pxe/httpboot/progress.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's entry point
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lab::pxe::httpboot;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto p = parse_progress(body);
  if (!p)
    return 0;
  if (p->mac.size() != 17 || !known_progress_stage(p->stage) ||
      p->detail.size() > kMaxProgressDetail)
    std::abort();
  for (const char c : p->detail) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f)
      std::abort();
  }
  return 0;
}
