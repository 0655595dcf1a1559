#pragma once
// The peer side of `labd run`: the mTLS listener peers reach this node on, the gossip rounds
// that spread the fleet envelope, and, while the coordinator is out of reach, asking this
// node's keepers for its newest envelope. Off when peer.listen is "off" or no routable address
// is known for the node.

#include "agent/cache/cache.hpp"
#include "agent/daemon/settings.hpp"
#include "agent/localapi/api.hpp"
#include "agent/sync/syncer.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace boost::asio {
class io_context;
}

namespace lab::agent::daemon {

/// The address peers are told to use ("10.0.0.7:8444"): peer.advertise; else a specific
/// peer.listen address; else for a wildcard one the local address this node reaches the
/// coordinator from with the listen port. nullopt when the listener is off or that address is
/// loopback (no other machine could use it).
std::optional<std::string> advertised_peer_address(const Settings& settings,
                                                   std::string_view coordinator_url);

class Peers {
 public:
  /// Loads the fleet envelope held in the cache; does not listen yet.
  static Result<std::unique_ptr<Peers>> create(const Settings& settings, cache::Cache& cache,
                                               const cache::Identity& identity,
                                               std::shared_ptr<localapi::State> state);
  ~Peers();
  Peers(const Peers&) = delete;
  Peers& operator=(const Peers&) = delete;

  /// Listens on peer.listen (on `io`) and advertises `address`.
  Result<void> listen(boost::asio::io_context& io, const std::string& address);
  /// What the syncer calls for peer duties (fleet envelopes, keepers).
  sync::PeerSync& peer_sync();
  /// Starts the gossip thread; `syncer` is asked to sync from keepers while unreachable.
  void start(sync::Syncer& syncer);
  /// The node certificate was renewed: new connections get the new one.
  void reload_certificate();
  /// Stops the gossip thread and the listener; `stopped` runs on the io_context.
  void stop(std::function<void()> stopped);
  /// Waits up to `timeout` for the gossip thread to end (a request in flight holds it up to
  /// its own timeout); false when it has not.
  bool join_for(std::chrono::milliseconds timeout);

  struct Impl;

 private:
  explicit Peers(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lab::agent::daemon
