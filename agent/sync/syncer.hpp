#pragma once
// Keeping the cache in step with the coordinator: long-poll for newer bundles, apply them,
// renew the node certificate before it expires, back off with jitter while unreachable.
// The engine talks through Transport, so tests can serve bundles from an in-test server or
// replace the coordinator at this seam.

#include "agent/cache/cache.hpp"
#include "agent/sync/backoff.hpp"
#include "agent/sync/error.hpp"
#include "shared/crypto/x509.hpp"
#include "shared/protocol/protocol.hpp"

#include <boost/json/object.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace lab::agent::sync {

/// A poll's answer: the node's newer envelope, if any, and how new the fleet envelope and the
/// envelopes this node keeps are at the coordinator (0 when it does not say).
struct PollAnswer {
  std::optional<shared::crypto::Bytes> envelope;
  std::int64_t fleet_revision = 0;
  std::int64_t kept_revision = 0;
};

/// The coordinator's agent routes, over mTLS with the node certificate, and the renewal of an
/// expired certificate, over TLS without one.
class Transport {
 public:
  virtual ~Transport() = default;
  /// GET /v1/agent/bundle?since=REV&wait=S[&kept=K]: the envelope bytes on 200, none on 204.
  /// With `kept_since` the poll also ends when an envelope this node keeps moves past it.
  /// unreachable on transport failure, forbidden on 401/403, rejected on other statuses.
  virtual Result<PollAnswer> fetch_bundle(std::int64_t since, std::chrono::seconds wait,
                                          std::optional<std::int64_t> kept_since) = 0;
  /// GET /v1/agent/kept?since=REV: the envelopes this node keeps for its peers.
  virtual Result<shared::protocol::Kept> fetch_kept(std::int64_t since);
  /// GET /v1/agent/fleet?since=REV: the fleet envelope when newer than `since`.
  virtual Result<std::optional<shared::crypto::Bytes>> fetch_fleet(std::int64_t since);
  /// POST /v1/agent/renew: the new certificate PEM for `csr_pem`.
  virtual Result<std::string> renew(std::string_view csr_pem) = 0;
  /// POST /v1/renew, presenting no client certificate (it may have expired) and verifying the
  /// server against the node's CA: the new certificate PEM for a CSR and a key proof (purpose
  /// "renew"). renew_grace_passed when the certificate expired longer ago than the
  /// coordinator's renewal grace (the node must rejoin), proof_refused for a proof that does
  /// not verify, forbidden on other 401/403 (revoked, unknown), rate_limited on 429.
  virtual Result<std::string> renew_with_proof(const shared::protocol::RenewRequest& request) = 0;
  /// POST /v1/agent/report: the node's state and facts (updates its last-seen time).
  /// rate_limited on 429.
  virtual Result<void> report(std::string_view state, const boost::json::object& facts) = 0;
  /// After a report answered 429: the wait its Retry-After named (delta-seconds), if any.
  [[nodiscard]] virtual std::optional<std::chrono::seconds> retry_after() const {
    return std::nullopt;
  }
};

/// HTTPS transport (shared/http/beast_client) for `identity` (its URL, CA, certificate and key).
/// Blocking.
std::unique_ptr<Transport> make_http_transport(const cache::Identity& identity,
                                               std::chrono::seconds wait);

/// What the last sync round says about the cache, as `labd status` reports it.
enum class Health {
  ok,           // the coordinator confirmed the cache current (bundle applied, or 204)
  refused,      // the coordinator refuses this node (revoked, unknown, expired past the grace)
  unreachable,  // no answer (network, TLS)
  failing,      // an answer the agent could not use (bad bundle, server error, cache error)
};
Health health_of(const Error& error);
/// "ok", "refused", "unreachable", "failing".
const char* health_name(Health health) noexcept;

struct SyncOptions {
  std::chrono::seconds wait{55};  // long-poll wait asked of the coordinator
  Backoff backoff;
  /// A poll that ends sooner than this without news is followed by a pause of this length, so
  /// a coordinator that answers 204 at once cannot turn the loop into a busy loop.
  std::chrono::milliseconds min_interval{1000};
  /// Renew when less than this fraction of the certificate's lifetime is left.
  double renew_fraction = 1.0 / 3.0;
  /// Reported once per run after the first successful poll (then again after a failure).
  std::string report_state = "ready";
  boost::json::object report_facts;
  /// Members added to the facts of every report when it is sent (the health checks' states,
  /// the configuration run summary); may be empty.
  std::function<boost::json::object()> report_extras;
  /// After a report answered 429 the next one waits for the answer's Retry-After (bounded to
  /// 1 s..1 h) or, when it names none, this long (the coordinator allows a few reports at once,
  /// then one per coordinator.report_interval, 10 s by default); sync goes on meanwhile.
  std::chrono::seconds report_retry{30};
};

struct SyncHooks {
  /// A newer bundle was applied; the view is the cache after it (render files, serve it).
  std::function<void(const cache::View&)> applied;
  /// The coordinator answered (true, whatever it said) or could not be reached (false).
  std::function<void(bool reachable, std::int64_t now)> contact;
  /// A failed round and the pause before the next one.
  std::function<void(const Error&, std::chrono::milliseconds delay)> failed;
  /// The certificate was renewed (new not-after, unix seconds).
  std::function<void(std::int64_t not_after)> renewed;
  /// The coordinator confirmed at `now` that the cache is current: a bundle was applied, or an
  /// authenticated long-poll answered "nothing newer". A refusal is no confirmation.
  std::function<void(std::int64_t now)> confirmed;
  /// The coordinator refused for good to renew this certificate (it expired longer ago than
  /// the renewal grace): renewal stops, the cache is still served, the node must rejoin.
  /// Called once per certificate.
  std::function<void(const Error&)> rejoin_needed;
  /// An envelope relayed by a keeper was applied (the coordinator being out of reach).
  std::function<void(const cache::Origin&, std::int64_t revision)> relayed;
  /// Kept envelopes changed: how many nodes this node keeps now, the newest revision.
  std::function<void(std::size_t nodes, std::int64_t revision)> kept;
  /// A report was not taken; it is sent again after `retry_in` (rate-limited) or after the
  /// next successful poll (0). Sync goes on either way.
  std::function<void(const Error&, std::chrono::seconds retry_in)> report_failed;
};

/// An envelope of this node that a keeper relayed, and who relayed it.
struct Relayed {
  shared::crypto::Bytes envelope;
  cache::Origin origin;
};

/// What peer sync adds to the rounds (agent/peer implements it): the fleet envelope the
/// coordinator hands out goes to the gossip engine, and while the coordinator is out of reach
/// the node's keepers are asked for its newest envelope.
class PeerSync {
 public:
  virtual ~PeerSync() = default;
  [[nodiscard]] virtual std::int64_t fleet_revision() const = 0;
  virtual void offer_fleet(const shared::crypto::Bytes& envelope) = 0;
  /// This node's envelope newer than `since` from the first of `keepers` that has one;
  /// nullopt when none has. Each refusal is logged by the implementation.
  virtual std::optional<Relayed> ask_keepers(
      std::int64_t since, const std::vector<shared::protocol::Peer>& keepers) = 0;
};

using TransportFactory = std::function<std::unique_ptr<Transport>(const cache::Identity&)>;

class Syncer {
 public:
  Syncer(cache::Cache& cache, TransportFactory make_transport, SyncOptions options, SyncHooks hooks,
         std::function<std::int64_t()> now);

  /// One long-poll round: returns the applied revision, or nullopt when nothing newer came.
  /// A bundle the cache refuses (signature, node, revision) is an error of this round.
  Result<std::optional<std::int64_t>> poll_once();

  /// Renews the certificate when it is due (or `force`); true when renewed. One that has
  /// expired by the local clock is renewed by key proof (POST /v1/renew), unless the
  /// coordinator already refused that for this certificate (then false).
  Result<bool> renew_if_due(bool force = false);

  /// Renews by key proof: for a certificate the coordinator refuses (it may count it expired
  /// by its own clock). Once the coordinator refused this for the current certificate, false
  /// without asking again.
  Result<bool> renew_by_proof();

  /// Why the coordinator refused to renew the current certificate, if it did.
  [[nodiscard]] const std::optional<Error>& renewal_refusal() const noexcept {
    return renewal_refusal_;
  }

  /// Peer sync: keep envelopes for peers (the coordinator names this node a keeper only when it
  /// reported a peer address), hand fleet envelopes on, ask keepers when cut off. Set before
  /// run(); without it the node syncs with the coordinator only.
  void set_peer_sync(PeerSync* peers) { peers_ = peers; }

  /// While the coordinator is unreachable (the peer loop calls it each gossip round): asks the
  /// keepers of the cached view for a newer envelope of this node and applies it. True when
  /// one was applied. Safe beside run() on another thread (the cache and apply_mutex order it).
  Result<bool> sync_from_keepers();

  /// Called after every answered poll and after a bundle applied from a keeper, once the
  /// round's buffers (envelope, bundle, view) are freed: the moment to hand memory back. Set
  /// before run().
  void on_settled(std::function<void()> settled) { settled_ = std::move(settled); }

  /// Polls until stop(); pauses with backoff after failures. Blocking: run it on its own
  /// thread. Returns promptly after stop() except while a request is in flight.
  void run();
  void stop();
  [[nodiscard]] bool stopping() const noexcept { return stopping_.load(); }

  /// Held while a bundle is being applied and rendered; taking it lets a caller wait for a
  /// consistent point (process exit while a long-poll is still in flight).
  std::mutex& apply_mutex() noexcept { return apply_mutex_; }

 private:
  Result<std::optional<std::int64_t>> poll_answer();  // poll_once() without settling
  Result<void> ensure_transport();
  Result<bool> renew_with_proof(const cache::Identity& id);
  Result<void> install_certificate(const cache::Identity& id, const std::string& pem,
                                   const shared::crypto::EcPrivateKey& key);
  void report_if_due(std::int64_t now);
  Result<void> follow_peers(const PollAnswer& answer);
  void pause(std::chrono::milliseconds d);

  cache::Cache& cache_;
  TransportFactory make_transport_;
  SyncOptions options_;
  SyncHooks hooks_;
  std::function<void()> settled_;
  std::function<std::int64_t()> now_;
  std::unique_ptr<Transport> transport_;
  PeerSync* peers_ = nullptr;
  bool reported_ = false;
  std::int64_t report_after_ = 0;  // unix seconds; after a 429 to a report
  // The next poll asks the coordinator not to hold it: after start and after a failure the
  // agent learns at once whether its cache is current, instead of after a whole long-poll.
  bool quick_poll_ = true;
  // The coordinator refused a renewal by proof of this certificate (PEM): not asked again.
  std::string refused_certificate_;
  std::optional<Error> renewal_refusal_;
  std::atomic<bool> stopping_{false};
  std::mutex wait_mutex_;
  std::condition_variable wake_;
  std::mutex apply_mutex_;
};

}  // namespace lab::agent::sync
