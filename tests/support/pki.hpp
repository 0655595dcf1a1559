#pragma once

#include "shared/crypto/x509.hpp"

#include <string>

namespace lab::tests {

/// A throw-away CA with a server certificate for localhost/127.0.0.1, for TLS tests.
class TestPki {
 public:
  explicit TestPki(const std::string& ca_name = "test CA");

  /// A certificate for `key` signed by this CA, valid for a day.
  [[nodiscard]] shared::crypto::Certificate issue(const shared::crypto::EcPrivateKey& key,
                                                  const std::string& common_name,
                                                  shared::crypto::CertUsage usage) const;

  shared::crypto::EcPrivateKey ca_key;
  shared::crypto::Certificate ca;
  shared::crypto::EcPrivateKey server_key;
  shared::crypto::Certificate server;
};

}  // namespace lab::tests
