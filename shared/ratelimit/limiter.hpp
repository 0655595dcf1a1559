#pragma once
// A budget of failures per caller (a source address): an endpoint anyone can reach charges a
// caller for each request it refuses, and once the budget is spent answers that caller 429
// until enough of it has come back. Legitimate callers are never charged, so a fleet booting
// at once is not slowed by it; a stranger trying tokens or MACs is.
#include <chrono>
#include <cstddef>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace lab::shared::ratelimit {

struct LimiterOptions {
  double burst = 20;                // failures a caller may cause at once
  double per_second = 1;            // and then one per 1/per_second seconds
  std::size_t max_callers = 16384;  // least recently charged callers are forgotten first
};

/// Thread-safe; time comes in as an argument (steady clock).
class Limiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Limiter(LimiterOptions options = {});

  /// Seconds the caller must wait before it is served again (at least 1), or 0 when it may be
  /// served now. Does not charge.
  [[nodiscard]] std::int64_t retry_after(std::string_view caller, Clock::time_point now);
  /// Charges the caller for one refused request.
  void charge(std::string_view caller, Clock::time_point now);
  /// Callers tracked now.
  [[nodiscard]] std::size_t size() const;

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point at;
    std::list<std::string>::iterator lru;
  };
  void refill(Bucket& b, Clock::time_point now) const;

  LimiterOptions options_;
  mutable std::mutex mu_;
  std::list<std::string> lru_;  // front: most recently charged
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace lab::shared::ratelimit
