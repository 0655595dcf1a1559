#pragma once
// The agent's links to its peers, over mutual TLS with node certificates from the fleet CA:
// the listener's routes (Service) and the client side (Link) that the gossip engine and the
// syncer use. What a peer can get here: the fleet envelope (public to the fleet: revocations)
// and, for a node asking about itself only, that node's own envelope as the coordinator signed
// it (its secrets sealed to that node's key). What a peer can make this node believe: nothing
// it did not get from the coordinator, because every envelope is checked against the
// coordinator's key before it is kept, relayed or applied.
//
// Routes:
//   POST /v1/peer/fleet              gossip: Lab-Fleet-Revision, body = fleet envelope or empty;
//                                    200 with ours when newer, else 204 (both with our revision)
//   GET  /v1/peer/envelope?since=R   the caller's own envelope, kept here, when newer than R

#include "agent/cache/cache.hpp"
#include "agent/peer/gossip.hpp"
#include "agent/sync/syncer.hpp"
#include "shared/http/message/message.hpp"
#include "shared/http/server/server.hpp"
#include "shared/log/log.hpp"
#include "shared/ratelimit/limiter.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace lab::agent::peerlink {

inline constexpr std::string_view kFleetRevisionHeader = "Lab-Fleet-Revision";
/// A fleet envelope holds revoked serials and node ids only; far below this.
inline constexpr std::size_t kMaxFleetEnvelope = std::size_t{256} * 1024;
/// A node's envelope: its labels and sealed secrets (the coordinator's own bound).
inline constexpr std::size_t kMaxNodeEnvelope = std::size_t{64} * 1024 * 1024;

/// TLS of the peer listener: the node's certificate and key, clients checked against the CA.
shared::http::TlsConfig tls_config(const cache::Identity& identity);
/// Bounds of the peer listener: few connections, small bodies, short timeouts.
shared::http::Limits listener_limits();

/// Whether a certificate serial or a node is revoked, by the newest list this node holds.
using IsRevoked = std::function<bool(std::string_view serial, std::string_view node_id)>;

struct ServiceStats {
  std::atomic<std::uint64_t> served{0};
  std::atomic<std::uint64_t> refused{0};       // 400/401/403: logged with the reason
  std::atomic<std::uint64_t> rate_limited{0};  // 429
};

class Service {
 public:
  Service(cache::Cache& cache, peer::Gossip& gossip, IsRevoked revoked,
          shared::ratelimit::LimiterOptions limits = {
              .burst = 30, .per_second = 3, .max_callers = 4096});

  /// Answers one request (synchronously; nothing here waits on the network).
  shared::http::Response handle(const shared::http::Request& request);
  [[nodiscard]] const ServiceStats& stats() const noexcept { return stats_; }

 private:
  shared::http::Response refuse(const shared::http::Request& request, unsigned status,
                                std::string_view why);
  shared::http::Response fleet(const shared::http::Request& request, const std::string& node);
  shared::http::Response envelope(const shared::http::Request& request, const std::string& node);

  cache::Cache& cache_;
  peer::Gossip& gossip_;
  IsRevoked revoked_;
  shared::ratelimit::Limiter limiter_;
  ServiceStats stats_;
  shared::log::Logger logger_{"peer"};
};

struct LinkOptions {
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds timeout{15000};
};

/// The client side: carries gossip to a partner and asks keepers for this node's envelope.
/// Blocking; used from the agent's peer thread (and the syncer's through PeerSync).
class Link final : public peer::FleetTransport, public sync::PeerSync {
 public:
  Link(cache::Cache& cache, peer::Gossip& gossip, LinkOptions options = {});

  Result<peer::FleetMessage> exchange(const shared::protocol::Peer& partner,
                                      const peer::FleetMessage& message) override;

  [[nodiscard]] std::int64_t fleet_revision() const override;
  void offer_fleet(const shared::crypto::Bytes& envelope) override;
  std::optional<sync::Relayed> ask_keepers(
      std::int64_t since, const std::vector<shared::protocol::Peer>& keepers) override;

 private:
  Result<sync::Relayed> ask_keeper(std::int64_t since, const shared::protocol::Peer& keeper);

  cache::Cache& cache_;
  peer::Gossip& gossip_;
  LinkOptions options_;
  shared::log::Logger logger_{"peer"};
};

}  // namespace lab::agent::peerlink
