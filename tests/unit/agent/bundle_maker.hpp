#pragma once
// Signs bundles the way the coordinator does, with a test Ed25519 key: the real seam between
// the agent and whoever holds the bundle key.

#include "agent/cache/cache.hpp"
#include "shared/crypto/encoding.hpp"
#include "shared/crypto/keys.hpp"
#include "shared/crypto/x509.hpp"
#include "shared/envelope/envelope.hpp"
#include "shared/protocol/protocol.hpp"

#include <string>

namespace lab::tests {

class BundleMaker {
 public:
  explicit BundleMaker(std::string node_id = "n-0001")
      : node_id_(std::move(node_id)),
        signing_(shared::crypto::Ed25519PrivateKey::generate().value()),
        sealing_(shared::crypto::X25519PrivateKey::generate().value()),
        tls_key_(shared::crypto::EcPrivateKey::generate().value()) {}

  /// An identity as `labd join` would store it for this node.
  [[nodiscard]] agent::cache::Identity identity(std::string url = "https://127.0.0.1:1") const {
    agent::cache::Identity id;
    id.node_id = node_id_;
    id.name = "node-1";
    id.coordinator_url = std::move(url);
    id.certificate_pem = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n";
    id.ca_pem = id.certificate_pem;
    const auto raw = signing_.public_key().raw();
    id.bundle_key = shared::crypto::base64url_encode(raw);
    id.state = "enrolled";
    id.tls_key_pem = tls_key_.to_pem();
    id.sealing_key = sealing_.raw();
    return id;
  }

  /// A bundle for `revision` with `labels` and secrets sealed to the node.
  [[nodiscard]] shared::protocol::Bundle bundle(
      std::int64_t revision, shared::labels::LabelSet labels,
      const std::map<std::string, std::string>& secrets = {}) const {
    shared::protocol::Bundle b;
    b.node_id = node_id_;
    b.name = "node-1";
    b.revision = revision;
    b.issued_at = 1700000000 + revision;
    b.state = "enrolled";
    b.labels = std::move(labels);
    b.groups = {"all"};
    for (const auto& [name, value] : secrets) {
      const auto aad = shared::protocol::sealed_secret_aad(node_id_, name, revision);
      auto sealed = shared::crypto::seal(sealing_.public_key(), shared::crypto::as_bytes(value),
                                         shared::crypto::as_bytes(aad))
                        .value();
      b.secrets.push_back({name, revision, shared::crypto::base64url_encode(sealed)});
    }
    return b;
  }

  [[nodiscard]] shared::crypto::Bytes sign(const shared::protocol::Bundle& b) const {
    const std::string payload = shared::protocol::serialize(b);
    return shared::envelope::seal(signing_, shared::protocol::kBundleKind,
                                  shared::crypto::as_bytes(payload))
        .value();
  }

  [[nodiscard]] shared::crypto::Bytes envelope(
      std::int64_t revision, shared::labels::LabelSet labels,
      const std::map<std::string, std::string>& secrets = {}) const {
    return sign(bundle(revision, std::move(labels), secrets));
  }

  [[nodiscard]] const std::string& node_id() const noexcept { return node_id_; }
  [[nodiscard]] const shared::crypto::Ed25519PrivateKey& signing_key() const { return signing_; }
  [[nodiscard]] const shared::crypto::X25519PrivateKey& sealing_key() const { return sealing_; }

 private:
  std::string node_id_;
  shared::crypto::Ed25519PrivateKey signing_;
  shared::crypto::X25519PrivateKey sealing_;
  shared::crypto::EcPrivateKey tls_key_;
};

}  // namespace lab::tests
