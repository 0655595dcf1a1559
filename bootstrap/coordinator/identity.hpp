#pragma once
// The coordinator's key material: the CA, the TLS server certificate, the bundle signing key,
// the key that encrypts secrets at rest and the operator credential. Created on first start,
// read back on every later start; every private file is 0600.
#include "bootstrap/coordinator/coordinator.hpp"
#include "bootstrap/coordinator/store.hpp"
#include "shared/crypto/hash.hpp"
#include "shared/crypto/keys.hpp"
#include "shared/crypto/x509.hpp"

#include <string>

namespace lab::bootstrap::coordinator {

struct Identity {
  shared::crypto::EcPrivateKey ca_key;
  shared::crypto::Certificate ca_cert;
  shared::crypto::EcPrivateKey server_key;
  shared::crypto::Certificate server_cert;
  shared::crypto::Ed25519PrivateKey bundle_key;
  shared::crypto::SecretBytes secrets_key;  // 32 bytes, AES-256-GCM
  shared::crypto::Digest operator_token_sha256{};
  std::string ca_pin;
};

/// Files under data_dir: ca.key, ca.pem, server.key, server.pem, bundle.key, secrets.key,
/// operator.token. Whatever is missing is created (a new CA also gets a new server
/// certificate; a change of Options::server_names re-issues the server certificate). The
/// operator token's SHA-256 goes into the store; the clear token only into operator.token.
Result<Identity> load_or_create_identity(const Options& options, Store& store);

/// Writes `content` to `path` atomically (temporary file, fsync, rename, fsync of the
/// directory) with permissions `mode`.
Result<void> write_file_atomic(const std::filesystem::path& path, std::string_view content,
                               unsigned mode);

}  // namespace lab::bootstrap::coordinator
