// Join and sync against a TLS coordinator stand-in (real shared/http server, real libcurl
// client): pin checks, token refusal, unreachable coordinator, long-poll apply, renewal,
// backoff.
#include "agent/sync/backoff.hpp"
#include "agent/sync/join.hpp"
#include "agent/sync/proof.hpp"
#include "agent/sync/syncer.hpp"
#include "shared/crypto/random.hpp"
#include "shared/crypto/x509.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/unit/agent/fake_coordinator.hpp"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

namespace {

using namespace lab::agent::sync;
namespace cache = lab::agent::cache;
namespace keystore = lab::agent::keystore;
namespace crypto = lab::shared::crypto;
namespace protocol = lab::shared::protocol;
using lab::tests::FakeCoordinator;
using lab::tests::TempDir;
using namespace std::chrono_literals;

JoinParams params(const std::string& join_string) {
  JoinParams p;
  p.join = protocol::parse_join_string(join_string).value();
  p.hostname = "web-1";
  p.agent_version = "test";
  p.timeout = 10s;
  return p;
}

std::int64_t wall_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::uint16_t closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);  // nothing listens there now
  return ntohs(a.sin_port);
}

TEST(Join, PinnedCoordinatorIssuesAnIdentity) {
  FakeCoordinator coord;
  auto id = join(params(coord.join_string()));
  ASSERT_TRUE(id) << id.error().message();
  EXPECT_EQ(id->node_id, "n-0001");
  EXPECT_EQ(id->name, "web-1");
  EXPECT_EQ(id->coordinator_url, coord.url());
  EXPECT_EQ(id->ca_pem, coord.pki().ca.pem());
  auto cert = crypto::Certificate::from_pem(id->certificate_pem).value();
  auto key = crypto::EcPrivateKey::from_pem(id->tls_key_pem).value();
  EXPECT_EQ(cert.public_key_der(), key.public_key_der());
  EXPECT_EQ(id->sealing_key.size(), 32U);
}

TEST(Join, UsedOrUnknownTokenIsInvalidToken) {
  FakeCoordinator coord;
  const auto js = coord.join_string();
  ASSERT_TRUE(join(params(js)));
  auto again = join(params(js));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), SyncError::invalid_token);
  auto unknown = join(params(coord.join_string_with_unknown_token()));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error(), SyncError::invalid_token);
}

TEST(Join, WrongPinIsRefusedBeforeTheTokenIsSent) {
  FakeCoordinator coord;
  auto r = join(params(coord.join_string_with_wrong_pin()));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), SyncError::wrong_pin);
  EXPECT_EQ(coord.joins(), 0);
}

TEST(Join, UnreachableCoordinator) {
  auto js = protocol::parse_join_string(FakeCoordinator().join_string()).value();
  js.url = "https://127.0.0.1:" + std::to_string(closed_port());
  JoinParams p;
  p.join = js;
  p.timeout = 5s;
  auto r = join(p);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), SyncError::unreachable);
}

// A rejoin proves it is the node it was: the proof is made with the old key over the new
// CSR and the new token's id, so it is worth nothing to anyone without the new key.
TEST(Join, ARejoinCarriesAKeyProofOverTheNewCsr) {
  FakeCoordinator coord;
  auto first = join(params(coord.join_string()));
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(coord.last_join_proof(), "none");
  auto p = params(coord.join_string());
  p.prove = proof_signer(first->certificate_pem, first->tls_key_pem).value();
  auto again = join(p);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(coord.last_join_proof(), "valid");
  EXPECT_NE(again->tls_key_pem, first->tls_key_pem);

  // Signed with another key than the certificate's: the coordinator can tell.
  auto stranger = crypto::EcPrivateKey::generate().value();
  auto forged = params(coord.join_string());
  forged.prove = proof_signer(first->certificate_pem, stranger.to_pem()).value();
  ASSERT_TRUE(join(forged));
  EXPECT_EQ(coord.last_join_proof(), "invalid");
  EXPECT_EQ(proof_signer(first->certificate_pem, "not a key").error(), SyncError::keygen);
}

TEST(Backoff, GrowsDoublingWithJitterUpToTheCap) {
  const Backoff b{1000ms, 8000ms};
  EXPECT_EQ(b.delay(0, 0), 500ms);
  EXPECT_EQ(b.delay(0, 500), 1000ms);  // random % 501 == 500: the top of [d/2, d]
  EXPECT_EQ(b.delay(1, 0), 1000ms);
  EXPECT_EQ(b.delay(2, 0), 2000ms);
  EXPECT_EQ(b.delay(3, 4000), 8000ms);
  for (unsigned n = 0; n < 100; ++n) {
    const auto d = b.delay(n, crypto::random_u64());
    EXPECT_LE(d, 8000ms);
    EXPECT_GE(d, 500ms);
  }
  EXPECT_EQ(b.delay(60, 0), 4000ms);  // no overflow far past the cap
}

class SyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto raw = crypto::random_bytes(32).value();
    key_ = std::make_shared<const keystore::DataKey>(
        keystore::DataKey::from_bytes(raw, keystore::Protection::file).value());
    cache_ = cache::Cache::open(dir_ / "cache.db", key_).value();
    auto id = join(params(coord_.join_string()));
    ASSERT_TRUE(id) << id.error().message();
    ASSERT_TRUE(cache_->store_identity(*id));
  }

  Syncer make_syncer(SyncHooks hooks = {}, std::chrono::seconds wait = 2s) {
    SyncOptions o;
    o.wait = wait;
    o.backoff = {50ms, 200ms};
    o.min_interval = 10ms;
    return Syncer(
        *cache_, [wait](const cache::Identity& id) { return make_http_transport(id, wait); }, o,
        std::move(hooks), wall_now);
  }

  TempDir dir_{"lab-sync"};
  FakeCoordinator coord_;
  std::shared_ptr<const keystore::DataKey> key_;
  std::unique_ptr<cache::Cache> cache_;
};

TEST_F(SyncTest, PollAppliesNewerBundlesAndTouchesOnNoChange) {
  std::vector<std::int64_t> applied;
  auto syncer =
      make_syncer({.applied = [&](const cache::View& v) { applied.push_back(v.revision); },
                   .contact = {},
                   .failed = {},
                   .renewed = {}},
                  1s);
  std::vector<std::int64_t> settled;  // after each applied bundle, once its buffers are freed
  syncer.on_settled([&] { settled.push_back(static_cast<std::int64_t>(applied.size())); });
  // Nothing published yet: 204.
  auto none = syncer.poll_once();
  ASSERT_TRUE(none) << none.error().message();
  EXPECT_FALSE(*none);
  coord_.publish({{"role", "web"}}, {{"pw", "s3cret"}});
  auto first = syncer.poll_once();
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(*first, 1);
  auto v = cache_->view().value();
  EXPECT_EQ(v.labels.at("role"), "web");
  auto sealing = crypto::X25519PrivateKey::from_raw(cache_->identity()->sealing_key).value();
  EXPECT_EQ(crypto::as_chars(cache::open_secret(v, sealing, "pw").value()), "s3cret");
  // Up to date: the long-poll holds, then 204.
  const auto t0 = std::chrono::steady_clock::now();
  auto held = syncer.poll_once();
  ASSERT_TRUE(held);
  EXPECT_FALSE(*held);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms);
  EXPECT_EQ(applied, std::vector<std::int64_t>{1});
  EXPECT_EQ(settled, std::vector<std::int64_t>{1});
  EXPECT_TRUE(cache_->view()->last_contact.has_value());
  EXPECT_EQ(coord_.reports(), 1);  // once per run, after the first answer
}

TEST_F(SyncTest, RunLoopFollowsPublishesAndStopsPromptly) {
  std::mutex m;
  std::condition_variable cv;
  std::int64_t seen = 0;
  auto syncer = make_syncer({.applied =
                                 [&](const cache::View& v) {
                                   const std::lock_guard l(m);
                                   seen = v.revision;
                                   cv.notify_all();
                                 },
                             .contact = {},
                             .failed = {},
                             .renewed = {}},
                            1s);
  std::thread t([&] { syncer.run(); });
  for (int i = 1; i <= 5; ++i) {
    coord_.publish({{"step", std::to_string(i)}});
    std::unique_lock l(m);
    ASSERT_TRUE(cv.wait_for(l, 10s, [&] { return seen == i; })) << i;
  }
  syncer.stop();
  t.join();
  EXPECT_EQ(cache_->view()->labels.at("step"), "5");
}

TEST_F(SyncTest, RevokedNodeFailsWithForbiddenAndBacksOff) {
  coord_.revoke();
  std::vector<std::chrono::milliseconds> delays;
  auto syncer = make_syncer({.applied = {},
                             .contact = {},
                             .failed =
                                 [&](const lab::Error& e, std::chrono::milliseconds d) {
                                   EXPECT_EQ(e, SyncError::forbidden);
                                   delays.push_back(d);
                                 },
                             .renewed = {}});
  auto r = syncer.poll_once();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), SyncError::forbidden);
  std::thread t([&] { syncer.run(); });
  std::this_thread::sleep_for(700ms);
  syncer.stop();
  t.join();
  // Backoff, not a busy loop: a handful of attempts in 700 ms with 50..200 ms pauses.
  EXPECT_GE(delays.size(), 2U);
  EXPECT_LE(delays.size(), 20U);
  EXPECT_LE(coord_.bundle_requests(), 25);
}

TEST_F(SyncTest, RenewsWhenLittleLifetimeIsLeft) {
  auto syncer = make_syncer();
  EXPECT_FALSE(syncer.renew_if_due().value());  // a fresh 24 h certificate
  const auto before = cache_->identity()->certificate_pem;
  coord_.set_certificate_lifetime(48h);
  auto renewed = syncer.renew_if_due(true);
  ASSERT_TRUE(renewed) << renewed.error().message();
  EXPECT_TRUE(*renewed);
  EXPECT_EQ(coord_.renewals(), 1);
  auto id = cache_->identity().value();
  EXPECT_NE(id.certificate_pem, before);
  auto cert = crypto::Certificate::from_pem(id.certificate_pem).value();
  EXPECT_EQ(cert.public_key_der(),
            crypto::EcPrivateKey::from_pem(id.tls_key_pem)->public_key_der());
  // The renewed certificate works for mTLS.
  coord_.publish({{"a", "b"}});
  EXPECT_EQ(syncer.poll_once().value(), 1);
}

TEST_F(SyncTest, RenewalIsDueWhenLessThanAThirdOfTheLifetimeIsLeft) {
  // The clock is injected: a 30 s certificate is not due at +15 s, due at +21 s.
  coord_.set_certificate_lifetime(30s);
  auto syncer = make_syncer();
  ASSERT_TRUE(syncer.renew_if_due(true));  // now holds a 30 s certificate
  coord_.set_certificate_lifetime(24h);
  std::atomic<std::int64_t> skew{15};
  SyncOptions o;
  o.wait = 2s;
  auto later = Syncer(
      *cache_, [](const cache::Identity& id) { return make_http_transport(id, 2s); }, o, {},
      [&] { return wall_now() + skew.load(); });
  EXPECT_FALSE(later.renew_if_due().value());
  skew = 21;
  auto renewed = later.renew_if_due();
  ASSERT_TRUE(renewed) << renewed.error().message();
  EXPECT_TRUE(*renewed);
  EXPECT_EQ(coord_.renewals(), 2);
}

}  // namespace
