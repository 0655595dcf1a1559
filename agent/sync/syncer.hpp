#pragma once
// Keeping the cache in step with the coordinator: long-poll for newer bundles, apply them,
// renew the node certificate before it expires, back off with jitter while unreachable.
// The engine talks through Transport, so tests can serve bundles from an in-test server or
// replace the coordinator at this seam.

#include "agent/cache/cache.hpp"
#include "agent/sync/backoff.hpp"
#include "agent/sync/error.hpp"

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

/// The coordinator's agent routes, over mTLS with the node certificate.
class Transport {
 public:
  virtual ~Transport() = default;
  /// GET /v1/agent/bundle?since=REV&wait=S: the envelope bytes on 200, nullopt on 204.
  /// unreachable on transport failure, forbidden on 401/403, rejected on other statuses.
  virtual Result<std::optional<shared::crypto::Bytes>> fetch_bundle(std::int64_t since,
                                                                    std::chrono::seconds wait) = 0;
  /// POST /v1/agent/renew: the new certificate PEM for `csr_pem`.
  virtual Result<std::string> renew(std::string_view csr_pem) = 0;
  /// POST /v1/agent/report: the node's state and facts (updates its last-seen time).
  virtual Result<void> report(std::string_view state, const boost::json::object& facts) = 0;
};

/// HTTPS transport (shared/http/beast_client) for `identity` (its URL, CA, certificate and key).
/// Blocking.
std::unique_ptr<Transport> make_http_transport(const cache::Identity& identity,
                                               std::chrono::seconds wait);

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
};

struct SyncHooks {
  /// A newer bundle was applied; the view is the cache after it (render files, serve it).
  std::function<void(const cache::View&)> applied;
  /// The coordinator answered (true) or could not be reached (false).
  std::function<void(bool reachable, std::int64_t now)> contact;
  /// A failed round and the pause before the next one.
  std::function<void(const Error&, std::chrono::milliseconds delay)> failed;
  /// The certificate was renewed (new not-after, unix seconds).
  std::function<void(std::int64_t not_after)> renewed;
};

using TransportFactory = std::function<std::unique_ptr<Transport>(const cache::Identity&)>;

class Syncer {
 public:
  Syncer(cache::Cache& cache, TransportFactory make_transport, SyncOptions options, SyncHooks hooks,
         std::function<std::int64_t()> now);

  /// One long-poll round: returns the applied revision, or nullopt when nothing newer came.
  /// A bundle the cache refuses (signature, node, revision) is an error of this round.
  Result<std::optional<std::int64_t>> poll_once();

  /// Renews the certificate when it is due (or `force`); true when renewed.
  Result<bool> renew_if_due(bool force = false);

  /// Called after SyncHooks::applied, once the round's buffers (envelope, bundle, view) are
  /// freed: the moment to hand memory back. Set before run().
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
  Result<void> ensure_transport();
  void pause(std::chrono::milliseconds d);

  cache::Cache& cache_;
  TransportFactory make_transport_;
  SyncOptions options_;
  SyncHooks hooks_;
  std::function<void()> settled_;
  std::function<std::int64_t()> now_;
  std::unique_ptr<Transport> transport_;
  bool reported_ = false;
  std::atomic<bool> stopping_{false};
  std::mutex wait_mutex_;
  std::condition_variable wake_;
  std::mutex apply_mutex_;
};

}  // namespace lab::agent::sync
