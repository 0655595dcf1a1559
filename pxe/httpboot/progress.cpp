#include "pxe/httpboot/progress.hpp"

#include "pxe/httpboot/error.hpp"
#include "shared/json/json.hpp"
#include "shared/net/mac.hpp"

#include <algorithm>
#include <array>

namespace lab::pxe::httpboot {
namespace {

constexpr std::array<std::string_view, 5> kStages{"joining", "joined", "waiting", "ready",
                                                  "failed"};

Error bad(std::string what) {
  return {HttpBootError::bad_progress, std::move(what)};
}

}  // namespace

bool known_progress_stage(std::string_view stage) noexcept {
  return std::find(kStages.begin(), kStages.end(), stage) != kStages.end();
}

Result<Progress> parse_progress(std::string_view body) {
  if (body.size() > kMaxProgressBody)
    return bad("body: larger than " + std::to_string(kMaxProgressBody) + " bytes");
  auto o = shared::json::parse_object(body);
  if (!o)
    return bad("body: not a JSON object");
  auto mac = shared::json::get_string(*o, "mac");
  if (!mac)
    return bad("field 'mac': missing or not a string");
  auto canonical = shared::net::normalize_mac(*mac);
  if (!canonical)
    return bad("field 'mac': not a MAC address");
  auto stage = shared::json::get_string(*o, "stage");
  if (!stage)
    return bad("field 'stage': missing or not a string");
  if (!known_progress_stage(*stage))
    return bad("field 'stage': expected joining, joined, waiting, ready or failed");
  Progress p;
  p.mac = std::move(*canonical);
  p.stage = std::move(*stage);
  if (const auto* d = o->if_contains("detail"); d != nullptr && !d->is_null()) {
    if (!d->is_string())
      return bad("field 'detail': not a string");
    const std::string_view text(d->get_string().data(), d->get_string().size());
    for (const char c : text.substr(0, kMaxProgressDetail)) {
      const auto u = static_cast<unsigned char>(c);
      p.detail += (u >= 0x20 && u < 0x7f) ? c : '?';
    }
  }
  return p;
}

ProgressLimiter::ProgressLimiter(ProgressLimits limits) : limits_(limits) {
  limits_.burst = std::max<std::size_t>(limits_.burst, 1);
  limits_.max_macs = std::max<std::size_t>(limits_.max_macs, 1);
  if (limits_.refill.count() <= 0)
    limits_.refill = std::chrono::milliseconds(1);
}

bool ProgressLimiter::allow(const std::string& mac, std::chrono::steady_clock::time_point now) {
  const auto burst = static_cast<double>(limits_.burst);
  auto it = buckets_.find(mac);
  if (it == buckets_.end()) {
    if (buckets_.size() >= limits_.max_macs) {
      buckets_.erase(lru_.back());
      lru_.pop_back();
    }
    lru_.push_front(mac);
    it = buckets_.emplace(mac, Bucket{burst, now, lru_.begin()}).first;
  } else {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    const auto elapsed = std::chrono::duration<double, std::milli>(now - it->second.updated);
    if (elapsed.count() > 0) {
      it->second.tokens = std::min(
          burst, it->second.tokens + elapsed.count() / static_cast<double>(limits_.refill.count()));
      it->second.updated = now;
    }
  }
  if (it->second.tokens < 1.0)
    return false;
  it->second.tokens -= 1.0;
  return true;
}

}  // namespace lab::pxe::httpboot
