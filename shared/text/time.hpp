#pragma once
// Times and ages as operators read them: ISO 8601 in UTC, and kubectl-style short ages.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lab::shared::text {

/// "2026-12-06T07:01:31Z"; "-" for 0 or a negative time (never happened).
std::string format_time(std::int64_t unix_seconds);

/// The inverse of format_time: "2026-12-06T07:01:31Z" (or a date alone, "2026-12-06", as its
/// midnight UTC) to unix seconds; nullopt for anything else.
std::optional<std::int64_t> parse_time(std::string_view text);

/// "45s", "3m12s", "2h5m", "3d4h": the two largest units; "0s" for zero or less.
std::string format_age(std::int64_t seconds);

}  // namespace lab::shared::text
