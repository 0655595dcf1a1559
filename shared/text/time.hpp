#pragma once
// Times and ages as operators read them: ISO 8601 in UTC, and kubectl-style short ages.

#include <cstdint>
#include <string>

namespace lab::shared::text {

/// "2026-12-06T07:01:31Z"; "-" for 0 or a negative time (never happened).
std::string format_time(std::int64_t unix_seconds);

/// "45s", "3m12s", "2h5m", "3d4h": the two largest units; "0s" for zero or less.
std::string format_age(std::int64_t seconds);

}  // namespace lab::shared::text
