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
  socklen_t len = sizeof a;
  const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&a), len) == 0 &&
                     ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  ::close(fd);  // nothing listens there now
  EXPECT_TRUE(bound) << "no free port on 127.0.0.1";
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

TEST(Health, RefusedUnreachableOrFailing) {
  EXPECT_EQ(health_of(lab::Error(SyncError::forbidden, "")), Health::refused);
  EXPECT_EQ(health_of(lab::Error(SyncError::renew_grace_passed, "")), Health::refused);
  EXPECT_EQ(health_of(lab::Error(SyncError::unreachable, "")), Health::unreachable);
  EXPECT_EQ(health_of(lab::Error(SyncError::rejected, "")), Health::failing);
  EXPECT_EQ(health_of(lab::Error(cache::CacheError::secret_unopened, "")), Health::failing);
  EXPECT_STREQ(health_name(Health::refused), "refused");
  EXPECT_STREQ(health_name(Health::ok), "ok");
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

  Syncer make_syncer(SyncHooks hooks = {}, std::chrono::seconds wait = 2s,
                     std::function<std::int64_t()> now = wall_now) {
    SyncOptions o;
    o.wait = wait;
    o.backoff = {50ms, 200ms};
    o.min_interval = 10ms;
    return Syncer(
        *cache_, [wait](const cache::Identity& id) { return make_http_transport(id, wait); }, o,
        std::move(hooks), std::move(now));
  }

  // Swaps the node's certificate for one of `lifetime` (renewed over mTLS) and waits until it
  // has expired: the state of a node that was off, or cut off, longer than its lifetime.
  void expire_certificate() {
    coord_.set_certificate_lifetime(1s);
    auto syncer = make_syncer();
    ASSERT_TRUE(syncer.renew_if_due(true).value());
    coord_.set_certificate_lifetime(24h);
    const auto cert = crypto::Certificate::from_pem(cache_->identity()->certificate_pem).value();
    std::this_thread::sleep_until(cert.not_after() + 1100ms);
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
                   .renewed = {},
                   .confirmed = {},
                   .rejoin_needed = {},
                   .relayed = {},
                   .kept = {},
                   .report_failed = {}},
                  1s);
  std::vector<std::int64_t> settled;  // after each answered poll, once its buffers are freed
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
  EXPECT_EQ(settled, (std::vector<std::int64_t>{0, 1, 1}));  // the apply came before its settle
  EXPECT_TRUE(cache_->view()->confirmed_at.has_value());
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
                             .renewed = {},
                             .confirmed = {},
                             .rejoin_needed = {},
                             .relayed = {},
                             .kept = {},
                             .report_failed = {}},
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
                             .renewed = {},
                             .confirmed = {},
                             .rejoin_needed = {},
                             .relayed = {},
                             .kept = {},
                             .report_failed = {}});
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
  // A renewal by proof was tried once (the 403 might have meant "expired by my clock") and,
  // refused, not again: each refusal counts against this address at the coordinator.
  EXPECT_EQ(coord_.proof_renewals(), 1);
  ASSERT_TRUE(syncer.renewal_refusal());
  EXPECT_EQ(*syncer.renewal_refusal(), SyncError::forbidden);
}

// A node that was off longer than its certificate's lifetime: mTLS is refused, so the agent
// renews by key proof over TLS without a client certificate, then syncs as before.
TEST_F(SyncTest, AnExpiredCertificateIsRenewedByKeyProof) {
  expire_certificate();
  coord_.publish({{"after", "expiry"}});
  std::vector<std::int64_t> confirmed;
  auto syncer = make_syncer({.applied = {},
                             .contact = {},
                             .failed = {},
                             .renewed = {},
                             .confirmed = [&](std::int64_t t) { confirmed.push_back(t); },
                             .rejoin_needed = {},
                             .relayed = {},
                             .kept = {},
                             .report_failed = {}});
  auto refused = syncer.poll_once();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), SyncError::forbidden);
  EXPECT_TRUE(confirmed.empty());  // an answer, but no confirmation that the cache is current

  const auto before = cache_->identity()->certificate_pem;
  auto renewed = syncer.renew_if_due();
  ASSERT_TRUE(renewed) << renewed.error().message();
  EXPECT_TRUE(*renewed);
  EXPECT_EQ(coord_.proof_renewals(), 1);
  EXPECT_EQ(coord_.proof_renewals_with_client_cert(), 0);
  EXPECT_EQ(coord_.renewals(), 1);  // the mTLS one of expire_certificate() only
  const auto id = cache_->identity().value();
  EXPECT_NE(id.certificate_pem, before);
  EXPECT_EQ(crypto::Certificate::from_pem(id.certificate_pem)->public_key_der(),
            crypto::EcPrivateKey::from_pem(id.tls_key_pem)->public_key_der());
  EXPECT_EQ(syncer.poll_once().value(), 1);
  EXPECT_EQ(confirmed.size(), 1U);
}

// The coordinator's clock is ahead: it refuses a certificate this clock still finds valid. The
// run loop takes the 403 as a reason to try a renewal by proof, and goes on with it.
TEST_F(SyncTest, ACertificateExpiredByTheCoordinatorsClockIsRenewedByTheRunLoop) {
  expire_certificate();
  coord_.publish({{"clock", "behind"}});
  std::mutex m;
  std::condition_variable cv;
  std::int64_t seen = 0;
  std::vector<std::int64_t> renewed;
  // This clock is a minute behind: the certificate has ~59 s to go, far from due.
  auto syncer = make_syncer({.applied =
                                 [&](const cache::View& v) {
                                   const std::lock_guard l(m);
                                   seen = v.revision;
                                   cv.notify_all();
                                 },
                             .contact = {},
                             .failed = {},
                             .renewed = [&](std::int64_t t) { renewed.push_back(t); },
                             .confirmed = {},
                             .rejoin_needed = {},
                             .relayed = {},
                             .kept = {},
                             .report_failed = {}},
                            1s, [] { return wall_now() - 60; });
  EXPECT_FALSE(syncer.renew_if_due().value());
  std::thread t([&] { syncer.run(); });
  {
    std::unique_lock l(m);
    EXPECT_TRUE(cv.wait_for(l, 10s, [&] { return seen == 1; }));
  }
  syncer.stop();
  t.join();
  EXPECT_EQ(coord_.proof_renewals(), 1);
  EXPECT_EQ(renewed.size(), 1U);
}

// Past the coordinator's renewal grace only a rejoin helps: the agent says so once, stops
// asking, and keeps serving what it has.
TEST_F(SyncTest, PastTheRenewalGraceRenewalStopsAndTheNodeMustRejoin) {
  coord_.publish({{"kept", "yes"}});
  {
    auto syncer = make_syncer();
    ASSERT_EQ(syncer.poll_once().value(), 1);
  }
  expire_certificate();
  coord_.set_renew_grace(0s);
  std::mutex m;
  std::vector<lab::Error> failures;
  std::vector<lab::Error> rejoin;
  auto syncer = make_syncer({.applied = {},
                             .contact = {},
                             .failed =
                                 [&](const lab::Error& e, std::chrono::milliseconds) {
                                   const std::lock_guard l(m);
                                   failures.push_back(e);
                                 },
                             .renewed = {},
                             .confirmed = {},
                             .rejoin_needed =
                                 [&](const lab::Error& e) {
                                   const std::lock_guard l(m);
                                   rejoin.push_back(e);
                                 },
                             .relayed = {},
                             .kept = {},
                             .report_failed = {}});
  std::thread t([&] { syncer.run(); });
  std::this_thread::sleep_for(800ms);
  syncer.stop();
  t.join();
  EXPECT_EQ(coord_.proof_renewals(), 1);
  ASSERT_EQ(rejoin.size(), 1U);
  EXPECT_EQ(rejoin[0], SyncError::renew_grace_passed);
  EXPECT_NE(rejoin[0].message().find("labd rejoin"), std::string::npos) << rejoin[0].message();
  ASSERT_GE(failures.size(), 2U);
  for (const auto& e : failures) {
    EXPECT_EQ(e, SyncError::renew_grace_passed) << e.message();
    EXPECT_EQ(health_of(e), Health::refused);
  }
  EXPECT_FALSE(syncer.renew_if_due().value());  // not asked again
  EXPECT_EQ(coord_.proof_renewals(), 1);
  EXPECT_EQ(cache_->view()->labels.at("kept"), "yes");
}

// 429 to a report is the coordinator's rate limit, not a sync failure: bundles keep coming,
// and the report is sent again once report_retry has passed.
TEST_F(SyncTest, ARateLimitedReportIsRetriedLaterAndSyncGoesOn) {
  coord_.limit_reports(true);
  std::atomic<std::int64_t> skew{0};
  std::vector<lab::Error> report_failures;
  auto syncer =
      make_syncer({.applied = {},
                   .contact = {},
                   .failed = {},
                   .renewed = {},
                   .confirmed = {},
                   .rejoin_needed = {},
                   .relayed = {},
                   .kept = {},
                   .report_failed = [&](const lab::Error& e,
                                        std::chrono::seconds) { report_failures.push_back(e); }},
                  1s, [&] { return wall_now() + skew.load(); });
  coord_.publish({{"r", "1"}});
  ASSERT_EQ(syncer.poll_once().value(), 1);
  EXPECT_EQ(coord_.reports(), 1);
  ASSERT_EQ(report_failures.size(), 1U);
  EXPECT_EQ(report_failures[0], SyncError::rate_limited);
  coord_.publish({{"r", "2"}});
  ASSERT_EQ(syncer.poll_once().value(), 2);
  EXPECT_EQ(coord_.reports(), 1);  // not before report_retry (30 s)
  coord_.limit_reports(false);
  skew = 31;
  coord_.publish({{"r", "3"}});
  ASSERT_EQ(syncer.poll_once().value(), 3);
  EXPECT_EQ(coord_.reports(), 2);
  coord_.publish({{"r", "4"}});
  ASSERT_EQ(syncer.poll_once().value(), 4);
  EXPECT_EQ(coord_.reports(), 2);  // reported: once per run
  EXPECT_EQ(report_failures.size(), 1U);
}

// The coordinator's Retry-After decides when a rate-limited report is sent again, within
// 1 s..1 h: an answer cannot silence the node's reports for longer than an hour.
TEST_F(SyncTest, ARateLimitedReportWaitsForTheCoordinatorsRetryAfter) {
  coord_.limit_reports(true, 5);
  std::atomic<std::int64_t> skew{0};
  auto syncer = make_syncer({}, 1s, [&] { return wall_now() + skew.load(); });
  std::int64_t revision = 0;
  auto poll = [&] {
    coord_.publish({{"r", std::to_string(++revision)}});
    ASSERT_EQ(syncer.poll_once().value(), revision);
  };
  poll();
  EXPECT_EQ(coord_.reports(), 1);
  skew = 3;
  poll();
  EXPECT_EQ(coord_.reports(), 1);  // within the 5 s asked for (not the 30 s report_retry)
  coord_.limit_reports(true, 7200);
  skew = 6;
  poll();
  EXPECT_EQ(coord_.reports(), 2);  // refused again, now with 2 h: capped at 1 h
  skew = 6 + 3598;
  poll();
  EXPECT_EQ(coord_.reports(), 2);
  coord_.limit_reports(false);
  skew = 6 + 3601;
  poll();
  EXPECT_EQ(coord_.reports(), 3);
  poll();
  EXPECT_EQ(coord_.reports(), 3);  // taken: once per run
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
