#pragma once
// Push-pull anti-entropy of the fleet envelope (revocations signed by the coordinator) between
// peers. Each round a node picks one random partner from its last bundle (keepers and ring
// fingers) and the two exchange revisions; whichever holds the older envelope gets the newer
// one. An envelope is adopted only when the coordinator's signature verifies, its payload
// parses, and its revision is newer than the one held: a peer can delay news, never forge it.
//
// The engine knows no sockets: FleetTransport carries a message to a partner (mTLS HTTP in
// labd, an in-memory call in the simulation of tests/bench/gossip), so the same code runs in
// both.

#include "shared/crypto/bytes.hpp"
#include "shared/errors/error.hpp"
#include "shared/protocol/protocol.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace lab::agent::peer {

enum class GossipError {
  no_partner = 1,     // no partner to talk to (none listed, or all revoked)
  oversized,          // an envelope larger than GossipOptions::max_envelope
  bad_envelope,       // signature, kind or payload refused (detail says which)
  revision_mismatch,  // the message claims another revision than the signed payload holds
};
const boost::system::error_category& gossip_category() noexcept;
inline boost::system::error_code make_error_code(GossipError e) noexcept {
  return {static_cast<int>(e), gossip_category()};
}

/// One gossip message, either way: the sender's fleet revision and, when it sends it, its
/// fleet envelope (verbatim bytes as the coordinator signed them).
struct FleetMessage {
  std::int64_t revision = 0;
  std::optional<shared::crypto::Bytes> envelope;
};

/// Verifies a fleet envelope (coordinator's key, kind "fleet") and parses its payload.
using VerifyFleet = std::function<Result<shared::protocol::Fleet>(shared::crypto::ByteView)>;

/// Carries a message to a partner and brings its answer back (the partner's Gossip::answer).
class FleetTransport {
 public:
  virtual ~FleetTransport() = default;
  virtual Result<FleetMessage> exchange(const shared::protocol::Peer& partner,
                                        const FleetMessage& message) = 0;
};

struct GossipOptions {
  std::size_t max_envelope = std::size_t{256} * 1024;
};

/// What one round did.
struct RoundOutcome {
  shared::protocol::Peer partner;
  bool learned = false;       // the partner's envelope was newer and adopted
  bool pushed = false;        // ours was newer and was sent to it
  std::int64_t revision = 0;  // the revision held after the round
};

/// Thread-safe: answer() runs on the peer server's threads while round() runs on the agent's.
class Gossip {
 public:
  struct Held {
    shared::crypto::Bytes envelope;
    shared::protocol::Fleet fleet;
  };
  /// Called (outside the engine's lock) after a newer envelope was adopted, with who sent it
  /// ("" when set() was called): labd stores it in its cache and re-checks connections.
  using Adopted = std::function<void(const Held&, const std::string& from_node)>;

  Gossip(VerifyFleet verify, GossipOptions options = {});

  /// Offers an envelope from a trusted path (the coordinator, or the cache at start): adopted
  /// under the same rules as one from a peer. True when adopted.
  Result<bool> offer(shared::crypto::ByteView envelope, const std::string& from_node = {});
  void on_adopted(Adopted adopted);

  /// The partners to pick from (keepers and fingers of the node's last bundle). Revoked nodes
  /// are skipped when picking.
  void set_partners(std::vector<shared::protocol::Peer> partners);

  /// One round as the initiator.
  Result<RoundOutcome> round(FleetTransport& transport, std::mt19937_64& rng);

  /// The responder's side of an exchange with `from_node` (the peer's certificate CN).
  /// Adopts a newer envelope it carries; answers with our revision, and our envelope when it is
  /// newer than the message's revision. A refused envelope is an error (the caller logs it
  /// and answers 400); the held one stays.
  Result<FleetMessage> answer(const FleetMessage& message, const std::string& from_node);

  [[nodiscard]] std::int64_t revision() const;
  [[nodiscard]] std::optional<Held> held() const;
  /// Whether the held fleet envelope revokes this certificate serial / this node.
  [[nodiscard]] bool revoked_serial(std::string_view serial) const;
  [[nodiscard]] bool revoked_node(std::string_view node_id) const;

 private:
  Result<bool> adopt(shared::crypto::ByteView envelope, std::int64_t claimed,
                     const std::string& from_node);

  VerifyFleet verify_;
  GossipOptions options_;
  mutable std::mutex mu_;
  std::optional<Held> held_;
  std::unordered_set<std::string> revoked_serials_;
  std::unordered_set<std::string> revoked_nodes_;
  std::vector<shared::protocol::Peer> partners_;
  Adopted adopted_;
};

}  // namespace lab::agent::peer

template <>
struct boost::system::is_error_code_enum<lab::agent::peer::GossipError> : std::true_type {};
