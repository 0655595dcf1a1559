// Housekeeping that must not cost a request anything: refusals become one audit row per caller
// and window, expired tokens are deleted, and a peer address change held back by the debounce
// reaches every bundle.
#include "bootstrap/coordinator/audit.hpp"
#include "bootstrap/coordinator/coordinator_impl.hpp"

#include <boost/json/array.hpp>

namespace lab::bootstrap::coordinator {
namespace {

// Callers tracked separately; past this, the rest share one row (address "*"), so a flood
// from many addresses costs bounded memory too.
constexpr std::size_t kMaxRefusalSources = 4096;
constexpr std::size_t kMaxSubjects = 8;
// Join tokens stay listed as expired this long before they are deleted.
constexpr std::int64_t kExpiredJoinTokenRetention = std::int64_t{24} * 3600;
constexpr std::int64_t kSweepInterval = 60;
// Agents' last-seen times are written this often, all in one transaction: a poll costs no
// write, and a crash loses at most this much of a time shown only as "last seen".
constexpr std::int64_t kSeenSaveInterval = 30;

}  // namespace

Error CoordinatorImpl::refuse(const Actor& actor, std::string_view action, std::string_view subject,
                              const Error& refusal) {
  const std::int64_t t = now();
  const std::lock_guard lock(refusals_mutex_);
  std::pair<std::string, std::string> key{actor.address, std::string(action)};
  if (refusals_.size() >= kMaxRefusalSources && !refusals_.contains(key))
    key.first = "*";
  Refusals& r = refusals_[key];
  if (r.count == 0) {
    r.since = t;
    r.actor = actor.name;
    r.first_reason = refusal.code().message();
    r.first_detail = refusal.detail();
  }
  ++r.count;
  ++r.reasons[refusal.code().message()];
  if (!subject.empty() && r.subjects.size() < kMaxSubjects &&
      std::find(r.subjects.begin(), r.subjects.end(), subject) == r.subjects.end()) {
    r.subjects.emplace_back(subject);
  }
  return refusal;
}

void CoordinatorImpl::flush_refusals(bool everything) {
  std::vector<std::pair<std::pair<std::string, std::string>, Refusals>> due;
  const std::int64_t t = now();
  {
    const std::lock_guard lock(refusals_mutex_);
    for (auto it = refusals_.begin(); it != refusals_.end();) {
      if (everything || t - it->second.since >= options_.refusal_window.count()) {
        due.emplace_back(it->first, std::move(it->second));
        it = refusals_.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (due.empty())
    return;
  // A refusal changes no state, so it does not move the revision. All rows of this round
  // commit together: one fsync however many callers were refused.
  const Lock lock(state_mutex_);
  auto tx = store_->begin();
  if (!tx)
    return;
  for (const auto& [key, r] : due) {
    boost::json::object reasons;
    for (const auto& [reason, n] : r.reasons)
      reasons[reason] = n;
    boost::json::array subjects;
    for (const auto& s : r.subjects)
      subjects.emplace_back(s);
    boost::json::object detail{{"reason", r.first_reason}, {"detail", r.first_detail},
                               {"count", r.count},         {"reasons", reasons},
                               {"subjects", subjects},     {"first_at", r.since}};
    if (!append_audit(*store_, {t, Actor{r.actor, key.first}, key.second,
                                r.subjects.empty() ? std::string() : r.subjects.front(), detail})) {
      return;
    }
  }
  (void)tx->commit();  // a failed write loses only refusal counts
}

void CoordinatorImpl::save_seen() {
  auto seen = hub_->take_unsaved_seen();
  if (seen.empty())
    return;
  auto tx = store_->begin();
  if (!tx)
    return;
  for (const auto& [id, at] : seen) {
    auto it = model_.nodes.find(id);
    if (it == model_.nodes.end() || it->second.last_seen >= at)
      continue;
    if (!store_->run("UPDATE nodes SET last_seen = ? WHERE id = ?", at, id))
      return;
  }
  if (!tx->commit())
    return;
  for (const auto& [id, at] : seen) {
    if (auto it = model_.nodes.find(id); it != model_.nodes.end())
      it->second.last_seen = std::max(it->second.last_seen, at);
  }
}

void CoordinatorImpl::maintain() {
  flush_refusals(false);
  Lock lock(state_mutex_);
  const std::int64_t t = now();
  if (t - last_sweep_ >= kSweepInterval) {
    last_sweep_ = t;
    // Boot tokens go as soon as they expire; unused join tokens a day later, so `lab token
    // list` still shows them as expired for a while. Used join tokens stay: they name the
    // node they made.
    (void)store_->run(
        "DELETE FROM tokens WHERE (kind = 'boot' AND expires_at <= ?) OR "
        "(kind = 'join' AND used_at IS NULL AND expires_at <= ?)",
        t, t - kExpiredJoinTokenRetention);
  }
  if (t - last_seen_saved_ >= kSeenSaveInterval) {
    last_seen_saved_ = t;
    save_seen();
  }
  if (!ring_pending_ || t - ring_published_at_ < options_.peer_debounce.count())
    return;
  // Views that change get a new revision, or agents parked at the current one would not see
  // them.
  auto tx = store_->begin();
  if (!tx)
    return;
  auto rev = store_->bump_revision();
  if (!rev)
    return;
  auto d = commit(*tx, *rev, Dirty::everything(), [&] {
    ring_pending_ = false;
    ring_published_at_ = t;
  });
  lock.unlock();
  if (d)
    deliver(std::move(*d));
}

}  // namespace lab::bootstrap::coordinator
