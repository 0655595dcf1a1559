#pragma once
// Key proofs: how a node shows the coordinator it holds the key of a certificate the coordinator
// issued, when the certificate cannot speak for itself over mTLS (a rejoin with a new CSR, or a
// renewal once the certificate has expired).

#include "agent/sync/error.hpp"
#include "shared/protocol/protocol.hpp"

#include <functional>
#include <string_view>

namespace lab::agent::sync {

/// Signs a key proof over `message` (shared::protocol::key_proof_message of the request).
using ProofSigner = std::function<Result<shared::protocol::KeyProof>(std::string_view message)>;

/// A signer with the node's current TLS key and the certificate it belongs to. keygen when the
/// key does not load; the signer itself fails with keygen when signing fails.
Result<ProofSigner> proof_signer(std::string certificate_pem, std::string_view key_pem);

}  // namespace lab::agent::sync
