#pragma once
// The published side of bundles: the newest signed bundle of every node and the watches
// parked on them. Readers (the agent API on io_context threads) only ever take this hub's
// short mutex, never the coordinator's state mutex.
#include "bootstrap/coordinator/coordinator.hpp"

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace lab::bootstrap::coordinator {

class WatchHub : public std::enable_shared_from_this<WatchHub> {
 public:
  using SignedBundle = Coordinator::SignedBundle;
  using Callback = std::function<void(SignedBundle)>;

  /// `clock` stamps when each node's agent was last seen polling.
  explicit WatchHub(Clock clock) : clock_(std::move(clock)) {}

  /// When a node's agent was last seen: a poll arriving, or ending (answered, timed out, hung
  /// up); `polling` while one is parked, so an agent waiting on a long poll counts as seen now.
  struct Presence {
    std::int64_t last_seen = 0;  // unix seconds; 0: not since this start
    bool polling = false;
  };
  [[nodiscard]] Presence presence(const std::string& node_id) const;
  /// The last-seen times that changed since the last call, for writing in one batch.
  [[nodiscard]] std::unordered_map<std::string, std::int64_t> take_unsaved_seen();

  /// The node's newest bundle, if one was published.
  [[nodiscard]] std::optional<SignedBundle> get(const std::string& node_id) const;

  /// Calls `cb` at once (on this thread) when the node's bundle is newer than `since` or the
  /// node is revoked, otherwise parks it until publish() moves past `since` or revoke().
  /// Destroying the handle cancels; it waits for a call already running on another thread,
  /// so `cb` never runs afterwards.
  /// With `kept_since`, also ends (SignedBundle::kept_changed) once a node this one keeps
  /// gets an envelope newer than it.
  std::unique_ptr<Coordinator::Watch> watch(const std::string& node_id, std::int64_t since,
                                            std::optional<std::int64_t> kept_since, Callback cb);

  /// Who keeps `node_id`'s envelope from now on (its bundle's peers), replacing the last set.
  void set_keepers(const std::string& node_id, std::vector<std::string> keepers);
  /// The newest revision among the envelopes `keeper` keeps; 0 when it keeps none.
  [[nodiscard]] std::int64_t kept_revision(const std::string& keeper) const;
  /// The nodes `keeper` keeps, and their envelopes newer than `since`.
  [[nodiscard]] shared::protocol::Kept kept(const std::string& keeper, std::int64_t since) const;

  /// The fleet envelope, replaced only by a newer one.
  void publish_fleet(SignedBundle fleet);
  [[nodiscard]] SignedBundle fleet() const;

  /// Replaces the published bundles of these nodes, unless the one published is already
  /// newer (views are signed outside the coordinator's lock, so two changes may publish out
  /// of order), and returns the calls owed to the watches they satisfy; run them after
  /// releasing every other lock.
  [[nodiscard]] std::vector<std::function<void()>> publish(
      std::vector<std::pair<std::string, SignedBundle>> bundles);

  /// Forgets a revoked node's bundle and returns the calls that answer its parked watches
  /// with SignedBundle::revoked; later watches on it are answered so at once.
  [[nodiscard]] std::vector<std::function<void()>> revoke(const std::string& node_id);

  /// Answers the node's parked watches with SignedBundle::revoked (their certificate was
  /// replaced by a re-enrolment) without marking the node revoked; returns the calls.
  [[nodiscard]] std::vector<std::function<void()>> evict(const std::string& node_id);

  [[nodiscard]] std::size_t parked() const;

  /// The revision of the node's newest published bundle (0: none), and the one its agent
  /// last said it holds (the `since` of its last poll; nullopt: no poll since this start).
  [[nodiscard]] std::pair<std::int64_t, std::optional<std::int64_t>> revisions(
      const std::string& node_id) const;

 private:
  struct Entry {
    std::recursive_mutex mutex;  // held while the callback runs
    bool done = false;
    Callback cb;
    std::int64_t since = 0;
    std::optional<std::int64_t> kept_since;
  };
  class Handle;
  static void fire(const std::shared_ptr<Entry>& entry, const SignedBundle& bundle);
  void cancel(const std::string& node_id, const std::shared_ptr<Entry>& entry);

  void seen_locked(const std::string& node_id);

  Clock clock_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::int64_t> seen_;     // node → last seen (unix seconds)
  std::unordered_map<std::string, std::int64_t> unsaved_;  // the same, not yet taken
  std::unordered_map<std::string, SignedBundle> bundles_;
  std::unordered_map<std::string, std::vector<std::shared_ptr<Entry>>> parked_;
  std::unordered_set<std::string> revoked_;
  std::unordered_map<std::string, std::int64_t> held_;  // node → the revision its agent holds
  // node → its keepers, and keeper → the nodes it keeps (the same relation, both ways).
  std::unordered_map<std::string, std::vector<std::string>> keepers_;
  std::unordered_map<std::string, std::vector<std::string>> kept_by_;
  SignedBundle fleet_;
  void drop_keepers(const std::string& node_id);
  [[nodiscard]] std::int64_t kept_revision_locked(const std::string& keeper) const;
  void nudge_locked(const std::string& keeper, std::int64_t revision,
                    std::vector<std::function<void()>>& calls);
};

}  // namespace lab::bootstrap::coordinator
