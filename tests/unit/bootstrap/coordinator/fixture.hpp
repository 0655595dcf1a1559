#pragma once
// A coordinator in a temporary data dir with a clock the test moves, and an agent's side of a
// join (its TLS and sealing keys) made with the real crypto.
#include "bootstrap/coordinator/coordinator.hpp"
#include "shared/crypto/encoding.hpp"
#include "shared/crypto/hash.hpp"
#include "shared/crypto/keys.hpp"
#include "shared/crypto/x509.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace lab::bootstrap::coordinator::testing {

namespace cr = shared::crypto;
namespace proto = shared::protocol;
using namespace std::chrono_literals;

/// Time as the test says; starts at a fixed instant.
class FakeClock {
 public:
  std::chrono::system_clock::time_point now() const { return now_.load(); }
  void advance(std::chrono::seconds d) { now_.store(now_.load() + d); }
  Clock fn() {
    return [this] { return now(); };
  }

 private:
  std::atomic<std::chrono::system_clock::time_point> now_{
      std::chrono::system_clock::time_point(std::chrono::seconds(1'790'000'000))};
};

/// What labd holds after a join.
struct Agent {
  cr::EcPrivateKey tls = cr::EcPrivateKey::generate().value();
  cr::X25519PrivateKey sealing = cr::X25519PrivateKey::generate().value();
  proto::JoinResponse joined;

  [[nodiscard]] proto::JoinRequest request(const std::string& token, const std::string& hostname,
                                           const std::vector<std::string>& macs = {}) const {
    proto::JoinRequest r;
    r.token = token;
    // The certificate's subject is chosen by the coordinator; the CSR only needs a CN.
    r.csr_pem = cr::make_csr(tls, hostname.empty() ? "agent" : hostname).value();
    const auto raw = sealing.public_key().raw();
    r.sealing_key = cr::base64url_encode(raw);
    r.hostname = hostname;
    r.agent_version = "test";
    boost::json::array nics;
    for (const auto& mac : macs)
      nics.push_back(boost::json::object{{"name", "eth0"}, {"mac", mac}});
    r.facts["nics"] = std::move(nics);
    return r;
  }
  /// What `labd rejoin` or a renewal past expiry sends: proof of this agent's key, over
  /// another CSR.
  [[nodiscard]] proto::KeyProof prove(std::string_view purpose, std::string_view token_id,
                                      std::string_view csr_pem) const {
    const std::string message = proto::key_proof_message(purpose, token_id, csr_pem);
    return {joined.certificate_pem, cr::base64url_encode(tls.sign(cr::as_bytes(message)).value())};
  }
  [[nodiscard]] AgentIdentity identity() const {
    auto cert = cr::Certificate::from_pem(joined.certificate_pem).value();
    return {joined.node_id, cert.serial()};
  }
  [[nodiscard]] std::string cert_der() const {
    auto der = cr::Certificate::from_pem(joined.certificate_pem).value().der();
    return {der.begin(), der.end()};
  }
};

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }

  Options options() {
    Options o;
    o.data_dir = dir_.path() / "data";
    o.advertised_url = "https://127.0.0.1:8443";
    o.server_names = {"127.0.0.1", "lab.example"};
    o.clock = clock_.fn();
    o.auto_accept = auto_accept_;
    o.refusal_window = refusal_window_;
    return o;
  }
  void reopen() {
    coordinator_.reset();
    auto c = Coordinator::open(options());
    ASSERT_TRUE(c) << c.error().message();
    coordinator_ = std::move(*c);
  }
  Coordinator& c() { return *coordinator_; }

  std::string token(const shared::labels::LabelSet& labels = {}, TokenBinding binding = {},
                    std::chrono::seconds ttl = std::chrono::hours(1)) {
    TokenSpec spec;
    spec.labels = labels;
    spec.binding = std::move(binding);
    spec.ttl = ttl;
    auto t = c().create_token(spec, operator_);
    EXPECT_TRUE(t) << t.error().message();
    return t ? t->token : std::string();
  }
  /// Joins a fresh agent with a fresh operator token carrying `labels`.
  Agent join(const std::string& hostname, const shared::labels::LabelSet& labels = {},
             const std::vector<std::string>& macs = {}) {
    Agent a;
    auto r = c().join(a.request(token(labels), hostname, macs), Actor{"agent", "10.0.0.5"});
    EXPECT_TRUE(r) << r.error().message();
    if (r)
      a.joined = *r;
    return a;
  }

  tests::TempDir dir_{"lab-coord"};
  FakeClock clock_;
  std::string auto_accept_;
  std::chrono::seconds refusal_window_{0};  // audit refusals at the next maintain()
  Actor operator_{"operator", "127.0.0.1"};
  std::unique_ptr<Coordinator> coordinator_;
};

}  // namespace lab::bootstrap::coordinator::testing
