#include "agent/sync/backoff.hpp"

#include <algorithm>

namespace lab::agent::sync {

std::chrono::milliseconds Backoff::delay(unsigned attempt, std::uint64_t random) const {
  const auto base = std::max<std::int64_t>(1, initial.count());
  const auto top = std::max<std::int64_t>(base, cap.count());
  std::int64_t d = base;
  for (unsigned i = 0; i < attempt && d < top; ++i)
    d = std::min(top, d * 2);
  const std::int64_t half = d / 2;
  const auto span = static_cast<std::uint64_t>(d - half + 1);
  return std::chrono::milliseconds(half + static_cast<std::int64_t>(random % span));
}

}  // namespace lab::agent::sync
