#pragma once
// A coordinator stand-in for agent tests: the real shared/http server over TLS with a test CA,
// the agent routes of API.md (join, bundle long-poll, renew) and bundles signed with a test
// Ed25519 key. It stands at the network seam; labd and the sync engine talk real HTTPS to it.

#include "shared/crypto/keys.hpp"
#include "shared/labels/label.hpp"
#include "shared/protocol/protocol.hpp"
#include "tests/support/pki.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace lab::tests {

class FakeCoordinator {
 public:
  /// Starts listening on 127.0.0.1 (port 0, or `port` to come back on the same address).
  explicit FakeCoordinator(std::uint16_t port = 0);
  FakeCoordinator(const FakeCoordinator&) = delete;
  FakeCoordinator& operator=(const FakeCoordinator&) = delete;
  ~FakeCoordinator();

  [[nodiscard]] std::string url() const;
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  /// A fresh one-time token and its join string (pinning this coordinator's CA).
  std::string join_string();
  /// A join string for this URL but pinning another CA.
  std::string join_string_with_wrong_pin();
  /// A join string with a token this coordinator never issued.
  std::string join_string_with_unknown_token();

  /// Signs the next revision for the joined node and wakes long-polls. Returns the revision.
  std::int64_t publish(const shared::labels::LabelSet& labels,
                       const std::map<std::string, std::string>& secrets = {});
  /// The envelope of `revision` as served.
  [[nodiscard]] std::vector<std::uint8_t> envelope(std::int64_t revision) const;
  [[nodiscard]] std::int64_t revision() const;

  /// Lifetime of the node certificates it issues (join and renew).
  void set_certificate_lifetime(std::chrono::seconds s) { lifetime_ = s; }
  /// Long-poll hold when the caller is up to date (the caller's wait is capped by this).
  void set_max_wait(std::chrono::seconds s) { max_wait_ = s; }
  /// Closes the listener (the coordinator is down) and opens it again on the same port; the
  /// node, its revisions and the CA survive.
  void pause();
  void resume();
  /// The highest revision an agent asked for bundles `since`: what it has acknowledged.
  [[nodiscard]] std::int64_t acknowledged() const;

  /// Answer every agent route with 403, as for a revoked node (and refuse its key proofs).
  void revoke() { revoked_ = true; }
  /// How long after expiry POST /v1/renew still renews a certificate by key proof (past it:
  /// 403 renew_grace_passed).
  void set_renew_grace(std::chrono::seconds s) { grace_ = s; }
  /// Answer reports with 429, as the coordinator does for a node that reports too often, with
  /// `Retry-After: retry_after` when it is positive.
  void limit_reports(bool on, int retry_after = 0) {
    report_retry_after_ = retry_after;
    limit_reports_ = on;
  }
  /// The key proof of the last join: "none", "valid" (verifies with the certificate's key over
  /// the join's token id and CSR, certificate from this CA) or "invalid".
  [[nodiscard]] std::string last_join_proof() const;

  [[nodiscard]] int joins() const noexcept { return joins_.load(); }
  [[nodiscard]] int renewals() const noexcept { return renewals_.load(); }
  [[nodiscard]] int bundle_requests() const noexcept { return bundle_requests_.load(); }
  [[nodiscard]] int reports() const noexcept { return reports_.load(); }
  /// POST /v1/renew requests, and those of them that presented a client certificate.
  [[nodiscard]] int proof_renewals() const noexcept { return proof_renewals_.load(); }
  [[nodiscard]] int proof_renewals_with_client_cert() const noexcept {
    return proof_renewals_with_client_cert_.load();
  }
  [[nodiscard]] std::string node_id() const;
  [[nodiscard]] const TestPki& pki() const noexcept { return pki_; }
  [[nodiscard]] const shared::crypto::Ed25519PrivateKey& bundle_key() const { return bundle_key_; }

  struct Impl;

 private:
  TestPki pki_;
  shared::crypto::Ed25519PrivateKey bundle_key_;
  std::uint16_t port_ = 0;
  std::atomic<std::chrono::seconds> lifetime_{std::chrono::hours(24)};
  std::atomic<std::chrono::seconds> max_wait_{std::chrono::seconds(55)};
  std::atomic<bool> revoked_{false};
  std::atomic<std::chrono::seconds> grace_{std::chrono::hours(24 * 30)};
  std::atomic<bool> limit_reports_{false};
  std::atomic<int> report_retry_after_{0};
  std::atomic<int> proof_renewals_{0};
  std::atomic<int> proof_renewals_with_client_cert_{0};
  std::atomic<int> joins_{0};
  std::atomic<int> renewals_{0};
  std::atomic<int> bundle_requests_{0};
  std::atomic<int> reports_{0};
  std::unique_ptr<Impl> impl_;
};

}  // namespace lab::tests
