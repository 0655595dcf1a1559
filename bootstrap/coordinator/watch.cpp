#include "bootstrap/coordinator/watch.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

namespace lab::bootstrap::coordinator {
namespace {

WatchHub::SignedBundle revoked_bundle() {
  WatchHub::SignedBundle b;
  b.revoked = true;
  return b;
}

WatchHub::SignedBundle kept_changed_bundle() {
  WatchHub::SignedBundle b;
  b.kept_changed = true;
  return b;
}

}  // namespace

class WatchHub::Handle final : public Coordinator::Watch {
 public:
  Handle(std::weak_ptr<WatchHub> hub, std::string node_id, std::shared_ptr<Entry> entry)
      : hub_(std::move(hub)), node_id_(std::move(node_id)), entry_(std::move(entry)) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() override {
    {
      // Waits for a callback running on another thread; re-entrant when the callback itself
      // drops its handle.
      const std::lock_guard lock(entry_->mutex);
      entry_->done = true;
      entry_->cb = nullptr;
    }
    if (auto hub = hub_.lock())
      hub->cancel(node_id_, entry_);
  }

 private:
  std::weak_ptr<WatchHub> hub_;
  std::string node_id_;
  std::shared_ptr<Entry> entry_;
};

std::optional<WatchHub::SignedBundle> WatchHub::get(const std::string& node_id) const {
  const std::lock_guard lock(mutex_);
  if (auto it = bundles_.find(node_id); it != bundles_.end())
    return it->second;
  return std::nullopt;
}

void WatchHub::fire(const std::shared_ptr<Entry>& entry, const SignedBundle& bundle) {
  const std::lock_guard lock(entry->mutex);
  if (entry->done)
    return;
  entry->done = true;
  Callback cb = std::move(entry->cb);
  entry->cb = nullptr;
  if (cb)
    cb(bundle);
}

std::unique_ptr<Coordinator::Watch> WatchHub::watch(const std::string& node_id, std::int64_t since,
                                                    std::optional<std::int64_t> kept_since,
                                                    Callback cb) {
  auto entry = std::make_shared<Entry>();
  entry->cb = std::move(cb);
  entry->since = since;
  entry->kept_since = kept_since;
  std::optional<SignedBundle> ready;
  {
    const std::lock_guard lock(mutex_);
    held_[node_id] = since;  // a poll names the revision the agent's cache holds
    seen_locked(node_id);
    auto it = bundles_.find(node_id);
    if (revoked_.contains(node_id)) {
      ready = revoked_bundle();
    } else if (it != bundles_.end() && it->second.revision > since) {
      ready = it->second;
    } else if (kept_since && kept_revision_locked(node_id) > *kept_since) {
      ready = kept_changed_bundle();
    } else {
      parked_[node_id].push_back(entry);
    }
  }
  auto handle = std::make_unique<Handle>(weak_from_this(), node_id, entry);
  if (ready)
    fire(entry, *ready);
  return handle;
}

std::vector<std::function<void()>> WatchHub::publish(
    std::vector<std::pair<std::string, SignedBundle>> bundles) {
  std::vector<std::function<void()>> calls;
  const std::lock_guard lock(mutex_);
  for (auto& item : bundles) {
    const std::string& node = item.first;
    const std::int64_t revision = item.second.revision;
    if (revoked_.contains(node))
      continue;
    auto& published = bundles_[node];
    if (published.envelope && published.revision >= revision)
      continue;
    if (auto it = parked_.find(node); it != parked_.end()) {
      auto& waiting = it->second;
      auto split = std::stable_partition(waiting.begin(), waiting.end(), [revision](const auto& e) {
        return e->since >= revision;
      });
      for (auto e = split; e != waiting.end(); ++e) {
        calls.emplace_back([entry = *e, b = item.second] { fire(entry, b); });
      }
      waiting.erase(split, waiting.end());
      if (waiting.empty())
        parked_.erase(it);
    }
    published = std::move(item.second);
    // Its keepers, parked with an interest in kept envelopes, come for the new one.
    if (auto k = keepers_.find(node); k != keepers_.end()) {
      for (const auto& keeper : k->second)
        nudge_locked(keeper, revision, calls);
    }
  }
  return calls;
}

void WatchHub::nudge_locked(const std::string& keeper, std::int64_t revision,
                            std::vector<std::function<void()>>& calls) {
  auto it = parked_.find(keeper);
  if (it == parked_.end())
    return;
  auto& waiting = it->second;
  auto split = std::stable_partition(waiting.begin(), waiting.end(), [revision](const auto& e) {
    return !e->kept_since || *e->kept_since >= revision;
  });
  for (auto e = split; e != waiting.end(); ++e)
    calls.emplace_back([entry = *e] { fire(entry, kept_changed_bundle()); });
  waiting.erase(split, waiting.end());
  if (waiting.empty())
    parked_.erase(it);
}

void WatchHub::set_keepers(const std::string& node_id, std::vector<std::string> keepers) {
  const std::lock_guard lock(mutex_);
  if (revoked_.contains(node_id))
    return;
  drop_keepers(node_id);
  for (const auto& k : keepers)
    kept_by_[k].push_back(node_id);
  if (keepers.empty())
    keepers_.erase(node_id);
  else
    keepers_[node_id] = std::move(keepers);
}

void WatchHub::drop_keepers(const std::string& node_id) {
  auto it = keepers_.find(node_id);
  if (it == keepers_.end())
    return;
  for (const auto& k : it->second) {
    auto kept = kept_by_.find(k);
    if (kept == kept_by_.end())
      continue;
    std::erase(kept->second, node_id);
    if (kept->second.empty())
      kept_by_.erase(kept);
  }
  keepers_.erase(it);
}

std::int64_t WatchHub::kept_revision_locked(const std::string& keeper) const {
  std::int64_t newest = 0;
  if (auto it = kept_by_.find(keeper); it != kept_by_.end()) {
    for (const auto& node : it->second) {
      if (auto b = bundles_.find(node); b != bundles_.end())
        newest = std::max(newest, b->second.revision);
    }
  }
  return newest;
}

std::int64_t WatchHub::kept_revision(const std::string& keeper) const {
  const std::lock_guard lock(mutex_);
  return kept_revision_locked(keeper);
}

shared::protocol::Kept WatchHub::kept(const std::string& keeper, std::int64_t since) const {
  shared::protocol::Kept out;
  const std::lock_guard lock(mutex_);
  auto it = kept_by_.find(keeper);
  if (it == kept_by_.end())
    return out;
  for (const auto& node : it->second) {
    auto b = bundles_.find(node);
    if (b == bundles_.end() || !b->second.envelope)
      continue;
    out.node_ids.push_back(node);
    out.revision = std::max(out.revision, b->second.revision);
    if (b->second.revision > since) {
      const std::string& e = *b->second.envelope;
      out.envelopes.emplace_back(e.begin(), e.end());
    }
  }
  std::sort(out.node_ids.begin(), out.node_ids.end());
  return out;
}

void WatchHub::publish_fleet(SignedBundle fleet) {
  const std::lock_guard lock(mutex_);
  if (fleet_.envelope && fleet_.revision >= fleet.revision)
    return;
  fleet_ = std::move(fleet);
}

WatchHub::SignedBundle WatchHub::fleet() const {
  const std::lock_guard lock(mutex_);
  return fleet_;
}

std::vector<std::function<void()>> WatchHub::revoke(const std::string& node_id) {
  std::vector<std::function<void()>> calls;
  const std::lock_guard lock(mutex_);
  bundles_.erase(node_id);
  revoked_.insert(node_id);
  // Nobody relays for a revoked node, and it relays for nobody.
  drop_keepers(node_id);
  if (auto kept = kept_by_.find(node_id); kept != kept_by_.end()) {
    for (const auto& node : kept->second) {
      if (auto k = keepers_.find(node); k != keepers_.end())
        std::erase(k->second, node_id);
    }
    kept_by_.erase(kept);
  }
  if (auto it = parked_.find(node_id); it != parked_.end()) {
    for (auto& entry : it->second)
      calls.emplace_back([entry] { fire(entry, revoked_bundle()); });
    parked_.erase(it);
  }
  return calls;
}

std::vector<std::function<void()>> WatchHub::evict(const std::string& node_id) {
  std::vector<std::function<void()>> calls;
  const std::lock_guard lock(mutex_);
  if (auto it = parked_.find(node_id); it != parked_.end()) {
    for (auto& entry : it->second)
      calls.emplace_back([entry] { fire(entry, revoked_bundle()); });
    parked_.erase(it);
  }
  return calls;
}

std::size_t WatchHub::parked() const {
  const std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const auto& [node, entries] : parked_)
    n += entries.size();
  return n;
}

void WatchHub::cancel(const std::string& node_id, const std::shared_ptr<Entry>& entry) {
  const std::lock_guard lock(mutex_);
  seen_locked(node_id);  // every poll ends here, however it ended
  auto it = parked_.find(node_id);
  if (it == parked_.end())
    return;
  std::erase(it->second, entry);
  if (it->second.empty())
    parked_.erase(it);
}

std::pair<std::int64_t, std::optional<std::int64_t>> WatchHub::revisions(
    const std::string& node_id) const {
  const std::lock_guard lock(mutex_);
  const auto b = bundles_.find(node_id);
  const auto h = held_.find(node_id);
  return {b == bundles_.end() ? 0 : b->second.revision,
          h == held_.end() ? std::nullopt : std::optional<std::int64_t>(h->second)};
}

void WatchHub::seen_locked(const std::string& node_id) {
  const std::int64_t t =
      std::chrono::duration_cast<std::chrono::seconds>(clock_().time_since_epoch()).count();
  seen_[node_id] = t;
  unsaved_[node_id] = t;
}

WatchHub::Presence WatchHub::presence(const std::string& node_id) const {
  const std::lock_guard lock(mutex_);
  const auto s = seen_.find(node_id);
  return {s == seen_.end() ? 0 : s->second, parked_.contains(node_id)};
}

std::unordered_map<std::string, std::int64_t> WatchHub::take_unsaved_seen() {
  const std::lock_guard lock(mutex_);
  return std::exchange(unsaved_, {});
}

}  // namespace lab::bootstrap::coordinator
