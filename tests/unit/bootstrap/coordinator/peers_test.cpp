// Peer sync at the coordinator: keepers and gossip partners from the ring, the envelopes each
// keeper is handed, the nudge that sends a keeper for them, and the fleet envelope.
#include "bootstrap/coordinator/watch.hpp"
#include "shared/envelope/envelope.hpp"
#include "tests/unit/bootstrap/coordinator/fixture.hpp"

#include <algorithm>
#include <mutex>

namespace lab::bootstrap::coordinator::testing {
namespace {

cr::Ed25519PublicKey bundle_key(Coordinator& c) {
  return cr::Ed25519PublicKey::from_raw(cr::base64url_decode(c.bundle_public_key()).value())
      .value();
}

proto::Bundle payload(Coordinator& c, const Coordinator::SignedBundle& sb) {
  auto env =
      shared::envelope::open(cr::as_bytes(*sb.envelope), bundle_key(c), proto::kBundleKind).value();
  return proto::parse_bundle(cr::as_chars(env.payload)).value();
}

struct Calls {
  std::mutex mutex;
  std::vector<Coordinator::SignedBundle> seen;
  std::function<void(Coordinator::SignedBundle)> fn() {
    return [this](Coordinator::SignedBundle b) {
      const std::lock_guard lock(mutex);
      seen.push_back(std::move(b));
    };
  }
  std::size_t count() {
    const std::lock_guard lock(mutex);
    return seen.size();
  }
};

class PeersTest : public CoordinatorTest {
 protected:
  /// `n` nodes with peer addresses, the ring published; sorted by node id.
  std::vector<Agent> fleet(int n) {
    std::vector<Agent> out;
    for (int i = 0; i < n; ++i) {
      out.push_back(join("p" + std::to_string(i)));
      EXPECT_TRUE(c().report(out.back().identity(), "ready",
                             {{"peer_address", "10.0.0." + std::to_string(i + 1) + ":8444"}}));
    }
    clock_.advance(std::chrono::hours(1));  // past peer_debounce
    c().maintain();
    std::sort(out.begin(), out.end(),
              [](const Agent& a, const Agent& b) { return a.joined.node_id < b.joined.node_id; });
    return out;
  }
  proto::Bundle view(const Agent& a) { return payload(c(), c().bundle(a.identity()).value()); }
};

TEST_F(PeersTest, KeepersAreTheNextNodesOnTheRingAndFingersReachFurther) {
  const auto nodes = fleet(12);
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const auto b = view(nodes[i]);
    ASSERT_EQ(b.peers.size(), 3U) << i;
    for (std::size_t k = 0; k < 3; ++k)
      EXPECT_EQ(b.peers[k].node_id, nodes[(i + k + 1) % 12].joined.node_id) << i << " " << k;
    // 12 nodes: fingers 4 and 8 places on.
    ASSERT_EQ(b.gossip.size(), 2U) << i;
    EXPECT_EQ(b.gossip[0].node_id, nodes[(i + 4) % 12].joined.node_id);
    EXPECT_EQ(b.gossip[1].node_id, nodes[(i + 8) % 12].joined.node_id);
    EXPECT_EQ(b.gossip[1].address.substr(0, 7), "10.0.0.");
  }
}

TEST_F(PeersTest, AKeeperIsHandedTheNewestEnvelopesOfTheNodesItKeepsVerbatim) {
  const auto nodes = fleet(5);
  const Agent& keeper = nodes[3];  // keeps nodes 0, 1 and 2 (3 is their 3rd, 2nd, 1st next)
  const auto kept = c().kept(keeper.identity(), 0);
  std::vector<std::string> expected{nodes[0].joined.node_id, nodes[1].joined.node_id,
                                    nodes[2].joined.node_id};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(kept.node_ids, expected);
  ASSERT_EQ(kept.envelopes.size(), 3U);
  const std::string own = *c().bundle(nodes[2].identity()).value().envelope;
  EXPECT_TRUE(std::any_of(kept.envelopes.begin(), kept.envelopes.end(), [&](const cr::Bytes& e) {
    return std::string(e.begin(), e.end()) == own;
  })) << "relayed byte for byte";
  EXPECT_EQ(kept.revision, c().kept_revision(keeper.joined.node_id));
  const auto none_newer = c().kept(keeper.identity(), kept.revision);
  EXPECT_TRUE(none_newer.envelopes.empty());
  EXPECT_EQ(none_newer.node_ids, expected);

  // A change to a kept node ends the keeper's poll when it asked for kept envelopes, and only
  // then; the new envelope is handed over.
  const std::int64_t own_rev = c().bundle(keeper.identity()).value().revision;
  Calls interested;
  Calls plain;
  auto w1 = c().watch(keeper.joined.node_id, own_rev, kept.revision, interested.fn());
  auto w2 = c().watch(keeper.joined.node_id, own_rev, std::nullopt, plain.fn());
  ASSERT_TRUE(c().label_node(nodes[2].joined.node_id, {{"role", "db"}}, {}, operator_));
  ASSERT_EQ(interested.count(), 1U);
  EXPECT_TRUE(interested.seen[0].kept_changed);
  EXPECT_FALSE(interested.seen[0].envelope);
  EXPECT_EQ(plain.count(), 0U);
  const auto after = c().kept(keeper.identity(), kept.revision);
  ASSERT_EQ(after.envelopes.size(), 1U);
  auto env = shared::envelope::open(after.envelopes[0], bundle_key(c()), proto::kBundleKind);
  ASSERT_TRUE(env);
  auto b = proto::parse_bundle(cr::as_chars(env->payload)).value();
  EXPECT_EQ(b.node_id, nodes[2].joined.node_id);
  EXPECT_EQ(b.labels.at("role"), "db");
  // A watch whose kept revision is already behind is answered at once.
  Calls late;
  auto w3 = c().watch(keeper.joined.node_id, own_rev, kept.revision, late.fn());
  ASSERT_EQ(late.count(), 1U);
  EXPECT_TRUE(late.seen[0].kept_changed);

  // A node that keeps nothing is told so.
  EXPECT_EQ(c().kept_revision("no-such-node"), 0);
}

TEST_F(PeersTest, TheFleetEnvelopeIsSignedAndCarriesEveryRevocation) {
  const auto nodes = fleet(5);
  const auto first = c().fleet();
  ASSERT_TRUE(first.envelope);
  auto key = bundle_key(c());
  auto env = shared::envelope::open(cr::as_bytes(*first.envelope), key, proto::kFleetKind);
  ASSERT_TRUE(env) << env.error().message();
  EXPECT_FALSE(shared::envelope::open(cr::as_bytes(*first.envelope), key, proto::kBundleKind))
      << "a fleet envelope never passes for a bundle";
  auto f = proto::parse_fleet(cr::as_chars(env->payload)).value();
  EXPECT_TRUE(f.revoked_nodes.empty());
  EXPECT_EQ(f.revision, first.revision);

  // A label change leaves it alone; a revocation makes a newer one.
  ASSERT_TRUE(c().label_node(nodes[0].joined.node_id, {{"a", "b"}}, {}, operator_));
  EXPECT_EQ(c().fleet().revision, first.revision);
  const std::string serial = nodes[1].identity().cert_serial;
  ASSERT_TRUE(c().revoke_node(nodes[1].joined.node_id, operator_));
  const auto second = c().fleet();
  EXPECT_GT(second.revision, first.revision);
  auto f2 = proto::parse_fleet(cr::as_chars(shared::envelope::open(cr::as_bytes(*second.envelope),
                                                                   key, proto::kFleetKind)
                                                .value()
                                                .payload))
                .value();
  EXPECT_EQ(f2.revoked_nodes, std::vector<std::string>{nodes[1].joined.node_id});
  EXPECT_NE(std::find(f2.revoked_serials.begin(), f2.revoked_serials.end(), serial),
            f2.revoked_serials.end());

  // Nobody keeps the revoked node's envelope, and it is handed none.
  for (const auto& n : nodes) {
    if (n.joined.node_id == nodes[1].joined.node_id)
      continue;
    const auto kept = c().kept(n.identity(), 0);
    EXPECT_EQ(std::count(kept.node_ids.begin(), kept.node_ids.end(), nodes[1].joined.node_id), 0);
  }
  EXPECT_TRUE(c().kept(nodes[1].identity(), 0).node_ids.empty());

  // After a restart the fleet envelope is built again with the same revocations.
  reopen();
  const auto reopened = c().fleet();
  ASSERT_TRUE(reopened.envelope);
  auto f3 = proto::parse_fleet(cr::as_chars(shared::envelope::open(cr::as_bytes(*reopened.envelope),
                                                                   key, proto::kFleetKind)
                                                .value()
                                                .payload))
                .value();
  EXPECT_EQ(f3.revoked_nodes, f2.revoked_nodes);
  EXPECT_GE(reopened.revision, second.revision);
}

TEST(WatchHubKeepers, ARevokedNodeIsNeitherKeptNorKeeper) {
  auto hub = std::make_shared<WatchHub>([] { return std::chrono::system_clock::now(); });
  auto bundle = [](std::int64_t rev) {
    return WatchHub::SignedBundle{rev, std::make_shared<const std::string>(std::to_string(rev))};
  };
  hub->set_keepers("a", {"k1", "k2"});
  hub->set_keepers("k1", {"a"});
  for (auto& call : hub->publish({{"a", bundle(3)}, {"k1", bundle(4)}}))
    call();
  EXPECT_EQ(hub->kept_revision("k1"), 3);
  EXPECT_EQ(hub->kept_revision("a"), 4);
  // Replacing a node's keepers moves it.
  hub->set_keepers("a", {"k2"});
  EXPECT_EQ(hub->kept_revision("k1"), 0);
  EXPECT_EQ(hub->kept("k2", 0).node_ids, std::vector<std::string>{"a"});
  for (auto& call : hub->revoke("a"))
    call();
  EXPECT_TRUE(hub->kept("k2", 0).node_ids.empty());
  EXPECT_EQ(hub->kept_revision("a"), 0);
  hub->set_keepers("a", {"k2"});  // a late delivery for a revoked node changes nothing
  EXPECT_TRUE(hub->kept("k2", 0).node_ids.empty());
}

}  // namespace
}  // namespace lab::bootstrap::coordinator::testing
