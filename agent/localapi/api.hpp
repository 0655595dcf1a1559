#pragma once
// The local API's decisions: which caller may read what, and the answers, from the node's
// in-memory view of its cache. No sockets here; server.hpp puts this behind a unix socket.
//
//   GET /v1/labels          → {"revision","staleness_seconds","labels":{…}}   (anyone)
//   GET /v1/secrets/NAME    → the raw value (root, or a uid/gid granted for NAME)
//   GET /v1/status          → node id, revision, staleness, key protection, reachability, and
//                             what the last sync round got ("sync", "last_error")
//   GET /v1/checks          → the health checks' states (anyone)
//   GET /metrics            → the same figures in the Prometheus text format (anyone)
//
// Staleness counts from the last time the coordinator confirmed the cache current (a bundle
// applied, or an authenticated "nothing newer"), not from the last time it answered at all: a
// coordinator that refuses the node answers, but the cache is not current for that.

#include "agent/cache/cache.hpp"
#include "shared/crypto/keys.hpp"
#include "shared/http/message/message.hpp"
#include "shared/protocol/checks.hpp"

#include <boost/json/object.hpp>

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace lab::agent::localapi {

/// `[[secret_access]] name = "db-password", uids = [1000], gids = [33]`: besides root, who may
/// read a secret. Anyone else gets labels and status only.
struct SecretAccess {
  std::string name;
  std::vector<uid_t> uids;
  std::vector<gid_t> gids;
};

/// The primary gid from SO_PEERCRED is checked; supplementary groups are not, because the
/// kernel does not report them with the socket credentials.
bool may_read_secret(const std::vector<SecretAccess>& rules,
                     const shared::http::Peer::Credentials& who, std::string_view name);

/// What the API serves of a cache::View. The labels are kept as their JSON text only, one block
/// instead of a map node per label (10,000 labels: about 0.4 MiB instead of 1.6 MiB of small
/// allocations that pin heap pages); `view` holds everything else, its `labels` empty.
struct Served {
  cache::View view;
  std::string labels_json;  // {"key":"value",...}, in key order
  std::size_t label_count = 0;
};

/// Builds what the API serves from `view`.
std::shared_ptr<const Served> make_served(const cache::View& view);

/// The outcome of the last sync round.
struct SyncStatus {
  /// "pending" (no round finished since the agent started), "ok", "refused", "unreachable",
  /// "failing" (agent/sync Health).
  std::string sync = "pending";
  std::optional<std::string> last_error;  // the failure's message; nullopt when ok
};

/// The peer side of the agent, as status reports it.
struct PeerStatus {
  std::string listen;  // "10.0.0.7:8444" as advertised; empty when the listener is off
  std::int64_t fleet_revision = 0;
  std::size_t kept_nodes = 0;
};

/// What the API serves; replaced whole after each applied bundle, read lock-free by handlers.
/// The times and the sync outcome live beside it, so a coordinator answer never copies the view.
class State {
 public:
  State(const cache::View& view, shared::crypto::X25519PrivateKey key, std::string key_protection);
  State(const std::shared_ptr<const cache::View>& view, shared::crypto::X25519PrivateKey key,
        std::string key_protection)
      : State(*view, std::move(key), std::move(key_protection)) {}

  [[nodiscard]] std::shared_ptr<const Served> served() const;
  /// Also takes the view's confirmation time.
  void set_view(const cache::View& view);
  void set_view(const std::shared_ptr<const cache::View>& view) { set_view(*view); }
  /// Records a coordinator answer (any status, a refusal included) or a failure to reach it.
  void set_reachable(bool reachable, std::int64_t now);
  void set_last_contact(std::int64_t now);
  /// The coordinator confirmed the cache current at `now`; the round's outcome is "ok".
  void set_confirmed(std::int64_t now);
  /// A failed round: its health ("refused", "unreachable", "failing") and message.
  void set_failed(std::string sync, std::string error);
  /// Unix seconds of the last coordinator answer; nullopt when there has been none.
  [[nodiscard]] std::optional<std::int64_t> last_contact() const noexcept;
  /// Unix seconds of the last confirmation that the cache is current; nullopt when never.
  [[nodiscard]] std::optional<std::int64_t> last_confirmed() const noexcept;
  [[nodiscard]] SyncStatus sync_status() const;
  void set_peer_status(PeerStatus peer);
  [[nodiscard]] std::optional<PeerStatus> peer_status() const;
  /// The health checks' damped states (the whole set, after any change).
  void set_checks(std::vector<shared::protocol::CheckResult> checks);
  [[nodiscard]] std::vector<shared::protocol::CheckResult> checks() const;
  /// The last OpenVox/Puppet run summary (agent/configrun's JSON form); {} when there is none.
  void set_config_run(boost::json::object run);
  [[nodiscard]] boost::json::object config_run() const;
  /// Unix seconds when the node's certificate expires (at start, and after each renewal).
  void set_certificate_not_after(std::int64_t not_after) noexcept;
  [[nodiscard]] std::optional<std::int64_t> certificate_not_after() const noexcept;

  [[nodiscard]] bool reachable() const noexcept { return reachable_.load(); }
  [[nodiscard]] const shared::crypto::X25519PrivateKey& sealing_key() const noexcept {
    return key_;
  }
  [[nodiscard]] const std::string& key_protection() const noexcept { return key_protection_; }

 private:
  static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::min();

  mutable std::mutex mutex_;
  std::shared_ptr<const Served> served_;
  shared::crypto::X25519PrivateKey key_;
  std::string key_protection_;
  std::atomic<bool> reachable_{false};
  std::atomic<std::int64_t> last_contact_{kNever};
  std::atomic<std::int64_t> last_confirmed_{kNever};
  std::atomic<std::int64_t> certificate_not_after_{kNever};
  SyncStatus sync_;                                    // under mutex_
  std::optional<PeerStatus> peer_;                     // under mutex_
  std::vector<shared::protocol::CheckResult> checks_;  // under mutex_
  boost::json::object config_run_;                     // under mutex_
};

/// Seconds since `last_confirmed`; nullopt when the cache was never confirmed current.
std::optional<std::int64_t> staleness(std::optional<std::int64_t> last_confirmed, std::int64_t now);

/// The node's figures in the Prometheus text format (labd_*): GET /metrics, and the
/// node_exporter textfile when configured.
std::string metrics_text(const State& state, std::int64_t now);

/// Answers one local request. `now` gives unix seconds (injected for tests).
class Api {
 public:
  Api(std::shared_ptr<State> state, std::vector<SecretAccess> rules,
      std::function<std::int64_t()> now);

  [[nodiscard]] shared::http::Response handle(const shared::http::Request& request) const;

 private:
  [[nodiscard]] shared::http::Response labels() const;
  [[nodiscard]] shared::http::Response status() const;
  [[nodiscard]] shared::http::Response checks() const;
  [[nodiscard]] shared::http::Response secret(const shared::http::Request& request,
                                              std::string_view name) const;

  std::shared_ptr<State> state_;
  std::vector<SecretAccess> rules_;
  std::function<std::int64_t()> now_;
};

}  // namespace lab::agent::localapi
