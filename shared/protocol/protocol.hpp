#pragma once
// The wire contract between labd and the coordinator (and between peers): the join string,
// the join exchange, and the bundle payload carried inside a signed envelope. Both sides use
// these types, so they cannot drift apart.

#include "shared/crypto/bytes.hpp"
#include "shared/errors/error.hpp"
#include "shared/labels/label.hpp"
#include "shared/protocol/checks.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lab::shared::protocol {

enum class ProtocolError {
  bad_join_string = 1,  // not a join string, or one with missing/invalid parts
  bad_token,            // a token that is not "<id>.<secret>" of the right sizes
  bad_message,          // a JSON message with a missing or invalid field
};
const boost::system::error_category& protocol_category() noexcept;
inline boost::system::error_code make_error_code(ProtocolError e) noexcept {
  return {static_cast<int>(e), protocol_category()};
}

// ---- Tokens and join strings ----------------------------------------------------------------

/// A one-time token: a public lookup id (8 random bytes, hex) and a 256-bit secret
/// (base64url). Only SHA-256 of the secret is stored by the coordinator.
struct Token {
  std::string id;      // 16 hex characters
  std::string secret;  // 43 base64url characters (32 bytes)

  [[nodiscard]] std::string to_string() const { return id + "." + secret; }
};
Result<Token> parse_token(std::string_view text);
/// A fresh random token.
Result<Token> make_token();

/// Everything `labd join` needs: where the coordinator is, the token, and the pin of the CA
/// ("sha256:<base64url of the SPKI>"), so nothing is trusted on first use.
/// Text form: "lab1:" + base64url(JSON {"url","token","pin"}): opaque, one word, safe to paste.
struct JoinString {
  std::string url;  // "https://10.0.0.1:8443"
  Token token;
  std::string ca_pin;
};
std::string format_join_string(const JoinString& js);
Result<JoinString> parse_join_string(std::string_view text);

// ---- Join -----------------------------------------------------------------------------------

/// Proof that the sender holds the private key of a certificate this coordinator issued: the
/// certificate (current, or expired less than the renewal grace ago) and an ECDSA-SHA256
/// signature with its key over key_proof_message(). It binds the new CSR, so a captured proof
/// is worth nothing to anyone without the new key.
struct KeyProof {
  std::string certificate_pem;
  std::string signature;  // base64url of the DER signature
};
/// What a KeyProof signs: "lab-key-proof-v1\n<purpose>\n<token id>\n<hex SHA-256 of the CSR>",
/// purpose "join" (re-enrolment of the node the certificate names) or "renew" (an expired
/// certificate renewed without a token; the token id is empty).
std::string key_proof_message(std::string_view purpose, std::string_view token_id,
                              std::string_view csr_pem);
boost::json::object to_json(const KeyProof& p);
Result<KeyProof> key_proof_from_json(const boost::json::object& o);

/// POST /v1/join (no client certificate yet; the token authenticates).
struct JoinRequest {
  std::string token;        // Token::to_string()
  std::string csr_pem;      // P-256 CSR of the node's TLS key
  std::string sealing_key;  // base64url of the node's X25519 public key
  std::string hostname;
  std::string agent_version;
  boost::json::object facts;  // hardware facts (agent/facts)
  /// Present when an enrolled node joins again (`labd rejoin`) and wants to stay the same node.
  std::optional<KeyProof> proof;
};
boost::json::object to_json(const JoinRequest& r);
Result<JoinRequest> join_request_from_json(const boost::json::object& o);

/// 200 answer to a join.
struct JoinResponse {
  std::string node_id;
  std::string name;
  std::string certificate_pem;  // the node's client certificate
  std::string ca_pem;           // the CA that signs it and the coordinator's server certificate
  std::string bundle_key;       // base64url Ed25519 public key that signs bundles
  std::string state;            // "enrolled", or "discovered" while waiting for an operator
};
boost::json::object to_json(const JoinResponse& r);
Result<JoinResponse> join_response_from_json(const boost::json::object& o);

/// POST /v1/agent/renew over mTLS: a new CSR for the same node, answered with a new
/// certificate. POST /v1/renew (no client certificate: it may have expired) carries a proof.
struct RenewRequest {
  std::string csr_pem;
  std::optional<KeyProof> proof;
};
boost::json::object to_json(const RenewRequest& r);
Result<RenewRequest> renew_request_from_json(const boost::json::object& o);
struct RenewResponse {
  std::string certificate_pem;
};

// ---- Bundle ---------------------------------------------------------------------------------

/// The envelope kind of a bundle.
inline constexpr std::string_view kBundleKind = "bundle";

/// One entitled secret, sealed to the node's X25519 key (shared/crypto seal()).
struct SealedSecret {
  std::string name;
  std::int64_t version = 0;  // the revision at which the secret's value last changed
  std::string sealed;        // base64url sealed box
};

/// Associated data of a sealed secret: binds it to one node, name and version, so a box can be
/// neither moved to another node nor replayed as another secret or an older value.
std::string sealed_secret_aad(std::string_view node_id, std::string_view name,
                              std::int64_t version);

struct Peer {
  std::string node_id;
  std::string address;  // "10.0.0.7:8444"
};

/// A node's view at a revision, the payload of a signed envelope (GET /v1/agent/bundle).
struct Bundle {
  std::string node_id;
  std::string name;
  std::int64_t revision = 0;
  std::int64_t issued_at = 0;  // unix seconds, coordinator clock
  std::string state;
  labels::LabelSet labels;
  std::vector<std::string> groups;
  std::vector<SealedSecret> secrets;
  std::vector<std::string> revoked_serials;
  /// This node's keepers: the peers that hold its newest envelope and hand it back to it when
  /// the coordinator is out of reach (the next nodes after it on the ring).
  std::vector<Peer> peers;
  /// Further gossip partners (ring fingers at doubling distances), so that a revocation spreads
  /// over the fleet in about log2(N) rounds. Absent in bundles of older coordinators.
  std::vector<Peer> gossip;
  /// Health checks whose selector matches the node, by name. Absent in bundles of older
  /// coordinators (none).
  std::vector<Check> checks;
};
/// Canonical serialisation (fixed member order), the bytes that get signed.
std::string serialize(const Bundle& b);
Result<Bundle> parse_bundle(std::string_view json);

// ---- Fleet envelope -------------------------------------------------------------------------

/// The envelope kind of the fleet envelope.
inline constexpr std::string_view kFleetKind = "fleet";

/// What every node must know even with the coordinator gone: the certificates and nodes it
/// revoked. Small at any fleet size (peer addresses travel in each node's own bundle), so
/// gossip can carry it. Newest revision wins.
struct Fleet {
  std::int64_t revision = 0;
  std::int64_t issued_at = 0;                // unix seconds, coordinator clock
  std::vector<std::string> revoked_serials;  // sorted; dropped once the certificate expires
  std::vector<std::string> revoked_nodes;    // sorted node ids
};
std::string serialize(const Fleet& f);
Result<Fleet> parse_fleet(std::string_view json);

// ---- Kept envelopes -------------------------------------------------------------------------

/// GET /v1/agent/kept: the newest bundle envelopes of the nodes this node keeps, verbatim.
/// `revision` is the newest among them; `since` asks only for newer ones.
struct Kept {
  std::int64_t revision = 0;
  std::vector<std::string> node_ids;     // every node this node keeps, newer or not
  std::vector<crypto::Bytes> envelopes;  // only those newer than `since`
};
boost::json::object to_json(const Kept& k);
Result<Kept> kept_from_json(const boost::json::object& o);

}  // namespace lab::shared::protocol

template <>
struct boost::system::is_error_code_enum<lab::shared::protocol::ProtocolError> : std::true_type {};
