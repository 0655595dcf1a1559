#pragma once

#include <chrono>
#include <cstdint>

namespace lab::agent::sync {

/// Exponential backoff with jitter: attempt n waits a uniformly random time in [d/2, d] with
/// d = min(cap, initial × 2^n), so a fleet that lost its coordinator does not come back in
/// lock step, and never waits longer than `cap`.
struct Backoff {
  std::chrono::milliseconds initial{1000};
  std::chrono::milliseconds cap{std::chrono::minutes(5)};

  /// `random` is any 64-bit random value (injected, so tests are deterministic).
  [[nodiscard]] std::chrono::milliseconds delay(unsigned attempt, std::uint64_t random) const;
};

}  // namespace lab::agent::sync
