#include "bootstrap/coordinator/watch.hpp"
#include "shared/envelope/envelope.hpp"
#include "tests/unit/bootstrap/coordinator/fixture.hpp"

#include <mutex>

namespace lab::bootstrap::coordinator::testing {
namespace {

proto::Bundle payload(Coordinator& c, const Coordinator::SignedBundle& sb) {
  auto key =
      cr::Ed25519PublicKey::from_raw(cr::base64url_decode(c.bundle_public_key()).value()).value();
  auto env = shared::envelope::open(cr::as_bytes(*sb.envelope), key, proto::kBundleKind).value();
  return proto::parse_bundle(cr::as_chars(env.payload)).value();
}

/// Records the calls a watch receives.
struct Recorder {
  std::mutex mutex;
  std::vector<Coordinator::SignedBundle> calls;
  std::function<void(Coordinator::SignedBundle)> fn() {
    return [this](Coordinator::SignedBundle b) {
      const std::lock_guard lock(mutex);
      calls.push_back(std::move(b));
    };
  }
  std::size_t count() {
    const std::lock_guard lock(mutex);
    return calls.size();
  }
};

TEST_F(CoordinatorTest, RevisionMovesWithEveryChangeAndSurvivesReopen) {
  std::int64_t last = c().revision();
  auto step = [&](bool moved) {
    const std::int64_t now = c().revision();
    if (moved)
      EXPECT_EQ(now, last + 1);
    else
      EXPECT_EQ(now, last);
    last = now;
  };
  const std::string t = token();
  step(true);
  Agent a;
  a.joined = c().join(a.request(t, "n1"), {"agent", "10.0.0.5"}).value();
  step(true);
  ASSERT_TRUE(c().label_node("n1", {{"a", "b"}}, {}, operator_));
  step(true);
  ASSERT_TRUE(c().set_group({"g", "a=b", {}, {}}, operator_));
  step(true);
  ASSERT_TRUE(c().set_secret("s", "v", std::nullopt, operator_));
  step(true);
  EXPECT_FALSE(c().join(a.request(t, "n1"), {"agent", "10.0.0.5"}));  // refused: no change
  step(false);
  reopen();
  EXPECT_EQ(c().revision(), last);
  ASSERT_TRUE(c().label_node("n1", {{"a", "c"}}, {}, operator_));
  step(true);
}

TEST_F(CoordinatorTest, BundleIsSignedAndCarriesTheNodesView) {
  Agent a = join("web1", {{"role", "web"}});
  ASSERT_TRUE(c().set_group({"web", "role=web", {}, {}}, operator_));
  auto sb = c().bundle(a.identity());
  ASSERT_TRUE(sb) << sb.error().message();
  auto b = payload(c(), *sb);
  EXPECT_EQ(b.node_id, a.joined.node_id);
  EXPECT_EQ(b.name, "web1");
  EXPECT_EQ(b.state, "enrolled");
  EXPECT_EQ(b.labels.at("role"), "web");
  EXPECT_EQ(b.groups, std::vector<std::string>{"web"});
  EXPECT_EQ(b.revision, c().revision());
  EXPECT_EQ(
      b.issued_at,
      std::chrono::duration_cast<std::chrono::seconds>(clock_.now().time_since_epoch()).count());
  EXPECT_EQ(c().bundle({"0000000000000000", ""}).error(), CoordinatorError::not_found);
}

TEST_F(CoordinatorTest, WatchFiresOnTheNodesChangeOnlyAndOnce) {
  Agent a = join("a1", {{"role", "web"}});
  Agent b = join("b1", {{"role", "db"}});
  const std::int64_t since = c().bundle(a.identity()).value().revision;

  Recorder rec;
  auto w = c().watch(a.joined.node_id, since, std::nullopt, rec.fn());
  EXPECT_EQ(rec.count(), 0U);
  // Another node's labels: not this node's view.
  ASSERT_TRUE(c().label_node("b1", {{"x", "1"}}, {}, operator_));
  EXPECT_EQ(rec.count(), 0U);
  // A token, a group nobody is in: no view changes either.
  token();
  ASSERT_TRUE(c().set_group({"empty", "role=none", {}, {}}, operator_));
  EXPECT_EQ(rec.count(), 0U);

  ASSERT_TRUE(c().label_node("a1", {{"x", "1"}}, {}, operator_));
  ASSERT_EQ(rec.count(), 1U);
  EXPECT_EQ(rec.calls[0].revision, c().revision());
  EXPECT_EQ(payload(c(), rec.calls[0]).labels.at("x"), "1");
  ASSERT_TRUE(c().label_node("a1", {{"x", "2"}}, {}, operator_));
  EXPECT_EQ(rec.count(), 1U);  // a watch fires once
}

TEST_F(CoordinatorTest, WatchAnswersAtOnceWhenAlreadyNewerAndCancelsOnDestruction) {
  Agent a = join("a1");
  Recorder now;
  auto w1 = c().watch(a.joined.node_id, 0, std::nullopt, now.fn());
  ASSERT_EQ(now.count(), 1U);
  EXPECT_EQ(now.calls[0].revision, c().bundle(a.identity()).value().revision);

  Recorder cancelled;
  auto w2 = c().watch(a.joined.node_id, c().revision(), std::nullopt, cancelled.fn());
  w2.reset();
  ASSERT_TRUE(c().label_node("a1", {{"x", "1"}}, {}, operator_));
  EXPECT_EQ(cancelled.count(), 0U);

  // A watch on a node that has no view yet waits for it.
  Recorder later;
  Agent b;
  const std::string t = token();
  auto request = b.request(t, "b1");
  auto w3 = c().watch("not-yet-known", 0, std::nullopt, later.fn());
  EXPECT_EQ(later.count(), 0U);
  EXPECT_TRUE(c().join(request, {"agent", "10.0.0.5"}));
}

TEST_F(CoordinatorTest, RevokedSerialsAndPeersTravelInBundles) {
  Agent a = join("a1");
  Agent b = join("b1");
  Agent gone = join("c1");
  const std::string gone_serial = gone.identity().cert_serial;
  ASSERT_TRUE(c().report(a.identity(), "ready", {{"peer_address", "10.0.0.1:8444"}}));
  ASSERT_TRUE(c().report(b.identity(), "ready", {{"peer_address", "10.0.0.2:8444"}}));
  ASSERT_TRUE(c().revoke_node("c1", operator_));

  auto view = payload(c(), c().bundle(a.identity()).value());
  EXPECT_EQ(view.revoked_serials, std::vector<std::string>{gone_serial});
  ASSERT_EQ(view.peers.size(), 1U);
  EXPECT_EQ(view.peers[0].node_id, b.joined.node_id);
  EXPECT_EQ(view.peers[0].address, "10.0.0.2:8444");
  EXPECT_EQ(c().bundle(gone.identity()).error(), CoordinatorError::not_found);
}

TEST_F(CoordinatorTest, RevokingANodeAnswersItsWatchesAtOnce) {
  Agent a = join("a1");
  Agent b = join("b1");
  const std::int64_t since = c().bundle(a.identity()).value().revision;
  Recorder parked;
  auto w = c().watch(a.joined.node_id, since, std::nullopt, parked.fn());
  Recorder other;
  auto w_other = c().watch(b.joined.node_id, c().bundle(b.identity()).value().revision,
                           std::nullopt, other.fn());
  ASSERT_TRUE(c().revoke_node("a1", operator_));
  ASSERT_EQ(parked.count(), 1U);
  EXPECT_TRUE(parked.calls[0].revoked);
  EXPECT_FALSE(parked.calls[0].envelope);
  // The other node's view changed too (the revoked serial), with a bundle.
  ASSERT_EQ(other.count(), 1U);
  EXPECT_FALSE(other.calls[0].revoked);
  EXPECT_TRUE(other.calls[0].envelope);

  // A watch set after the revocation is answered at once, whatever it asks for.
  Recorder later;
  auto w_later = c().watch(a.joined.node_id, 0, std::nullopt, later.fn());
  ASSERT_EQ(later.count(), 1U);
  EXPECT_TRUE(later.calls[0].revoked);
}

TEST(WatchHub, AnOlderBundlePublishedLateNeitherReplacesNorWakes) {
  // Views are signed outside the coordinator's lock: two changes may publish out of order.
  auto hub = std::make_shared<WatchHub>([] { return std::chrono::system_clock::now(); });
  auto bundle = [](std::int64_t rev) {
    return WatchHub::SignedBundle{rev, std::make_shared<const std::string>(std::to_string(rev))};
  };
  for (auto& call : hub->publish({{"n1", bundle(5)}}))
    call();
  Recorder rec;
  auto w = hub->watch("n1", 5, std::nullopt, rec.fn());
  for (auto& call : hub->publish({{"n1", bundle(4)}}))
    call();
  EXPECT_EQ(rec.count(), 0U);
  EXPECT_EQ(hub->get("n1")->revision, 5);
  for (auto& call : hub->publish({{"n1", bundle(6)}}))
    call();
  ASSERT_EQ(rec.count(), 1U);
  EXPECT_EQ(*rec.calls[0].envelope, "6");
  EXPECT_EQ(hub->parked(), 0U);
}

// An agent is seen when its poll arrives and when it ends, and counts as polling while parked;
// the times wait to be written in one batch.
TEST(WatchHub, PresenceFollowsPollsAndIsTakenForSavingOnce) {
  auto t = std::chrono::system_clock::time_point(std::chrono::seconds(1000));
  auto hub = std::make_shared<WatchHub>([&t] { return t; });
  EXPECT_EQ(hub->presence("n1").last_seen, 0);
  EXPECT_FALSE(hub->presence("n1").polling);
  Recorder rec;
  auto w = hub->watch("n1", 0, std::nullopt, rec.fn());
  EXPECT_TRUE(hub->presence("n1").polling);
  EXPECT_EQ(hub->presence("n1").last_seen, 1000);
  t += std::chrono::seconds(40);
  w.reset();  // the poll ended (answered, timed out or hung up)
  EXPECT_FALSE(hub->presence("n1").polling);
  EXPECT_EQ(hub->presence("n1").last_seen, 1040);
  auto unsaved = hub->take_unsaved_seen();
  ASSERT_EQ(unsaved.size(), 1U);
  EXPECT_EQ(unsaved["n1"], 1040);
  EXPECT_TRUE(hub->take_unsaved_seen().empty());
}

TEST_F(CoordinatorTest, DiscoveredNodeGetsNoSecretsUntilAccepted) {
  auto boot =
      c().mint_boot_token("52:54:00:00:00:09", "10.0.0.9", std::chrono::seconds(600)).value();
  Agent a;
  a.joined =
      c().join(a.request(boot.token, "pxe9", {"52:54:00:00:00:09"}), {"agent", "10.0.0.9"}).value();
  ASSERT_TRUE(c().set_secret("s", "v", std::string("!nothing"), operator_));
  Recorder rec;
  auto w = c().watch(a.joined.node_id, c().bundle(a.identity()).value().revision, std::nullopt,
                     rec.fn());
  auto b = payload(c(), c().bundle(a.identity()).value());
  EXPECT_EQ(b.state, "discovered");
  EXPECT_TRUE(b.secrets.empty());
  ASSERT_TRUE(c().accept_node(a.joined.node_id, operator_));
  ASSERT_EQ(rec.count(), 1U);
  auto accepted = payload(c(), rec.calls[0]);
  EXPECT_EQ(accepted.state, "enrolled");
  EXPECT_EQ(accepted.secrets.size(), 1U);
}

}  // namespace
}  // namespace lab::bootstrap::coordinator::testing
