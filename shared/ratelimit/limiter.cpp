#include "shared/ratelimit/limiter.hpp"

#include <algorithm>
#include <cmath>

namespace lab::shared::ratelimit {

Limiter::Limiter(LimiterOptions options) : options_(options) {
  options_.burst = std::max(1.0, options_.burst);
  options_.per_second = std::max(1e-6, options_.per_second);
  options_.max_callers = std::max<std::size_t>(1, options_.max_callers);
}

void Limiter::refill(Bucket& b, Clock::time_point now) const {
  const double elapsed = std::chrono::duration<double>(now - b.at).count();
  if (elapsed > 0) {
    b.tokens = std::min(options_.burst, b.tokens + elapsed * options_.per_second);
    b.at = now;
  }
}

std::int64_t Limiter::retry_after(std::string_view caller, Clock::time_point now) {
  const std::lock_guard lock(mu_);
  auto it = buckets_.find(std::string(caller));
  if (it == buckets_.end())
    return 0;
  refill(it->second, now);
  if (it->second.tokens >= 1)
    return 0;
  const double wait = (1 - it->second.tokens) / options_.per_second;
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(wait)));
}

void Limiter::charge(std::string_view caller, Clock::time_point now) {
  const std::lock_guard lock(mu_);
  std::string key(caller);
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    while (buckets_.size() >= options_.max_callers) {
      buckets_.erase(lru_.back());
      lru_.pop_back();
    }
    lru_.push_front(key);
    it = buckets_.emplace(std::move(key), Bucket{options_.burst, now, lru_.begin()}).first;
  } else {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
  }
  refill(it->second, now);
  it->second.tokens = std::max(-options_.burst, it->second.tokens - 1);
}

std::size_t Limiter::size() const {
  const std::lock_guard lock(mu_);
  return buckets_.size();
}

}  // namespace lab::shared::ratelimit
