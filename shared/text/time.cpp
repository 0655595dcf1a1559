#include "shared/text/time.hpp"

#include <array>
#include <ctime>
#include <string>

namespace lab::shared::text {

std::string format_time(std::int64_t unix_seconds) {
  if (unix_seconds <= 0)
    return "-";
  const std::time_t t = unix_seconds;
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::array<char, 32> buf{};
  if (std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    return "-";
  return buf.data();
}

std::optional<std::int64_t> parse_time(std::string_view text) {
  const std::string s(text);
  for (const char* format : {"%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"}) {
    std::tm tm{};
    const char* end = strptime(s.c_str(), format, &tm);
    if (end != nullptr && *end == '\0')
      return static_cast<std::int64_t>(timegm(&tm));
  }
  return std::nullopt;
}

std::string format_age(std::int64_t seconds) {
  if (seconds <= 0)
    return "0s";
  constexpr std::int64_t kMinute = 60;
  constexpr std::int64_t kHour = 60 * kMinute;
  constexpr std::int64_t kDay = 24 * kHour;
  auto two = [](std::int64_t big, const char* big_unit, std::int64_t small,
                const char* small_unit) {
    std::string out = std::to_string(big) + big_unit;
    if (small > 0)
      out += std::to_string(small) + small_unit;
    return out;
  };
  if (seconds < kMinute)
    return std::to_string(seconds) + "s";
  if (seconds < kHour)
    return two(seconds / kMinute, "m", seconds % kMinute, "s");
  if (seconds < kDay)
    return two(seconds / kHour, "h", seconds % kHour / kMinute, "m");
  return two(seconds / kDay, "d", seconds % kDay / kHour, "h");
}

}  // namespace lab::shared::text
