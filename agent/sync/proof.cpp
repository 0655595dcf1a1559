#include "agent/sync/proof.hpp"

#include "shared/crypto/encoding.hpp"
#include "shared/crypto/x509.hpp"

namespace lab::agent::sync {

Result<ProofSigner> proof_signer(std::string certificate_pem, std::string_view key_pem) {
  auto key = shared::crypto::EcPrivateKey::from_pem(key_pem);
  if (!key)
    return Error(SyncError::keygen, "the node's TLS key does not load: " + key.error().message());
  return ProofSigner([cert = std::move(certificate_pem), key = std::move(*key)](
                         std::string_view message) -> Result<shared::protocol::KeyProof> {
    auto sig = key.sign(shared::crypto::as_bytes(message));
    if (!sig)
      return Error(SyncError::keygen, "signing the key proof failed: " + sig.error().message());
    return shared::protocol::KeyProof{cert, shared::crypto::base64url_encode(*sig)};
  });
}

}  // namespace lab::agent::sync
