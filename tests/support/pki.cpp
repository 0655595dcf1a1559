#include "tests/support/pki.hpp"

namespace lab::tests {
namespace {

using namespace std::chrono_literals;
namespace crypto = shared::crypto;

crypto::Certificate make_ca(const crypto::EcPrivateKey& key, const std::string& name) {
  const auto now = std::chrono::system_clock::now();
  return crypto::self_signed_ca(key, {.common_name = name,
                                      .dns_names = {},
                                      .ip_addresses = {},
                                      .not_before = now - 1h,
                                      .not_after = now + 24h,
                                      .usage = crypto::CertUsage::ca})
      .value();
}

}  // namespace

TestPki::TestPki(const std::string& ca_name)
    : ca_key(crypto::EcPrivateKey::generate().value()),
      ca(make_ca(ca_key, ca_name)),
      server_key(crypto::EcPrivateKey::generate().value()),
      server(issue(server_key, "server", crypto::CertUsage::server)) {}

crypto::Certificate TestPki::issue(const crypto::EcPrivateKey& key, const std::string& common_name,
                                   crypto::CertUsage usage) const {
  const auto now = std::chrono::system_clock::now();
  return crypto::issue_certificate(ca_key, ca, key.public_key_der(),
                                   {.common_name = common_name,
                                    .dns_names = {"localhost"},
                                    .ip_addresses = {"127.0.0.1"},
                                    .not_before = now - 1h,
                                    .not_after = now + 24h,
                                    .usage = usage})
      .value();
}

}  // namespace lab::tests
