#pragma once
// `labd join`: trust the coordinator only through the CA pin of the join string, make the
// node's keys, and exchange the one-time token for a certificate.

#include "agent/cache/cache.hpp"
#include "agent/sync/error.hpp"
#include "agent/sync/proof.hpp"
#include "shared/protocol/protocol.hpp"

#include <boost/json/object.hpp>

#include <chrono>
#include <string>

namespace lab::agent::sync {

struct JoinParams {
  shared::protocol::JoinString join;
  std::string hostname;
  std::string agent_version;
  boost::json::object facts;
  std::chrono::milliseconds timeout{30000};
  /// Set when an enrolled node joins again (`labd rejoin`): signs a proof with the node's
  /// current key over the new CSR, so the coordinator keeps the node (id, name, labels) and
  /// only replaces its keys. Empty: the join makes a new node.
  ProofSigner prove;
};

/// Blocking. Steps: make a P-256 TLS key, its CSR and an X25519 sealing key; connect and read
/// the server's chain before sending anything; find the certificate whose SPKI pin equals the
/// join string's pin and check the server certificate chains to it and names the URL's host
/// (wrong_pin / tls_failed otherwise); then POST /v1/join on that connection, with a key proof
/// when `prove` is set. Errors: unreachable, wrong_pin, tls_failed, invalid_token (403),
/// proof_refused (403 invalid_proof), rate_limited (429), rejected, bad_response, keygen.
/// A proof the coordinator finds stale (a revoked node, a certificate past the renewal grace)
/// is not an error: the join makes a new node, whose id the caller compares with the old one.
/// The returned identity is not stored; the caller stores it.
Result<cache::Identity> join(const JoinParams& params);

/// The pinned CA among `chain_pem` (PEM certificates, leaf first): the one whose SPKI pin is
/// `pin`, with the leaf chaining to it at `now`. wrong_pin when none.
Result<std::string> pinned_ca(const std::vector<std::string>& chain_pem, std::string_view pin,
                              std::chrono::system_clock::time_point now);

}  // namespace lab::agent::sync
