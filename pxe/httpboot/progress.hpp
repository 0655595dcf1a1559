#pragma once
// POST /boot/progress: what `labd boot` reports before it has a certificate (a join refused,
// a missing parameter), for the machine's boot flight recorder. The wire codec and the
// per-MAC rate limit are pure; the server checks the caller's address and records.

#include "shared/errors/error.hpp"

#include <chrono>
#include <cstddef>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

namespace lab::pxe::httpboot {

/// The path of the progress route (POST only).
inline constexpr std::string_view kProgressPath = "/boot/progress";
/// Largest body accepted; a report is a MAC, a stage word and a line of text.
inline constexpr std::size_t kMaxProgressBody = 2048;
/// Longest detail kept; longer ones are cut.
inline constexpr std::size_t kMaxProgressDetail = 400;

/// One report: {"mac": "52:54:00:12:34:56", "stage": "failed", "detail": "…"}.
struct Progress {
  std::string mac;     // canonical
  std::string stage;   // one of progress_stages()
  std::string detail;  // printable ASCII only, at most kMaxProgressDetail characters
};

/// The stages `labd boot` reports: joining, joined, waiting, ready, failed.
bool known_progress_stage(std::string_view stage) noexcept;

/// Parses and cleans a report. bad_progress naming the field on anything else (not JSON, not
/// an object, missing or non-string fields, a MAC that does not parse, an unknown stage, a
/// body over kMaxProgressBody). Control characters in the detail become '?'.
Result<Progress> parse_progress(std::string_view body);

struct ProgressLimits {
  std::size_t burst = 10;                  // reports a MAC may send at once
  std::chrono::milliseconds refill{3000};  // one more report allowed per this interval
  std::size_t max_macs = 4096;             // MACs tracked; the least recently seen goes first
};

/// A token bucket per MAC. Memory is bounded by max_macs entries. Not thread-safe: the server
/// holds a mutex around it.
class ProgressLimiter {
 public:
  explicit ProgressLimiter(ProgressLimits limits = {});
  /// True when `mac` may report now (and counts the report).
  bool allow(const std::string& mac, std::chrono::steady_clock::time_point now);
  [[nodiscard]] std::size_t tracked() const noexcept { return buckets_.size(); }

 private:
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point updated;
    std::list<std::string>::iterator lru;
  };
  ProgressLimits limits_;
  std::list<std::string> lru_;  // front: most recently seen
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace lab::pxe::httpboot
