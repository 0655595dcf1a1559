// The gossip engine with real Ed25519 keys and real envelopes, two or more engines wired
// together by an in-memory transport: newest wins both ways, and nothing that is not the
// coordinator's newer signed fleet envelope is ever adopted.
#include "agent/peer/gossip.hpp"
#include "shared/crypto/keys.hpp"
#include "shared/envelope/envelope.hpp"
#include "shared/protocol/protocol.hpp"
#include "shared/protocol/ring.hpp"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <set>

namespace {

namespace peer = lab::agent::peer;
namespace crypto = lab::shared::crypto;
namespace protocol = lab::shared::protocol;
namespace envelope = lab::shared::envelope;

struct Coordinator {
  crypto::Ed25519PrivateKey key = crypto::Ed25519PrivateKey::generate().value();

  [[nodiscard]] crypto::Bytes fleet(std::int64_t revision, std::vector<std::string> serials = {},
                                    std::vector<std::string> nodes = {},
                                    std::string_view kind = protocol::kFleetKind) const {
    const protocol::Fleet f{revision, 1000 + revision, std::move(serials), std::move(nodes)};
    return envelope::seal(key, kind, crypto::as_bytes(protocol::serialize(f))).value();
  }
  [[nodiscard]] peer::VerifyFleet verifier(int* calls = nullptr) const {
    auto pub = key.public_key();
    return [pub, calls](crypto::ByteView bytes) -> lab::Result<protocol::Fleet> {
      if (calls != nullptr)
        ++*calls;
      LAB_TRY_ASSIGN(auto env, envelope::open(bytes, pub, protocol::kFleetKind));
      return protocol::parse_fleet(crypto::as_chars(env.payload));
    };
  }
};

// Engines by node id; exchange() calls the partner's answer(), as the peer listener would.
class Wire final : public peer::FleetTransport {
 public:
  std::map<std::string, peer::Gossip*> nodes;
  std::string from;
  std::set<std::string> down;
  std::size_t messages = 0;

  lab::Result<peer::FleetMessage> exchange(const protocol::Peer& partner,
                                           const peer::FleetMessage& message) override {
    ++messages;
    if (down.contains(partner.node_id))
      return lab::Error(peer::GossipError::no_partner, "down");
    return nodes.at(partner.node_id)->answer(message, from);
  }
};

protocol::Peer peer_named(const std::string& id) {
  return {id, "10.0.0.1:8444"};
}

TEST(Gossip, TheNewerEnvelopeWinsWhetherPulledOrPushed) {
  Coordinator c;
  peer::Gossip a(c.verifier());
  peer::Gossip b(c.verifier());
  ASSERT_TRUE(a.offer(c.fleet(5, {"aa"})).value());
  Wire wire;
  wire.nodes = {{"a", &a}, {"b", &b}};
  std::mt19937_64 rng(1);

  // b pulls from a.
  wire.from = "b";
  b.set_partners({peer_named("a")});
  auto pulled = b.round(wire, rng).value();
  EXPECT_TRUE(pulled.learned);
  EXPECT_FALSE(pulled.pushed);
  EXPECT_EQ(b.revision(), 5);
  EXPECT_TRUE(b.revoked_serial("aa"));

  // b hears of a newer revision first: its next round pushes it to a.
  ASSERT_TRUE(b.offer(c.fleet(9, {"aa", "bb"}, {"node-x"})).value());
  auto pushed = b.round(wire, rng).value();
  EXPECT_FALSE(pushed.learned);
  EXPECT_TRUE(pushed.pushed);
  EXPECT_EQ(a.revision(), 9);
  EXPECT_TRUE(a.revoked_serial("bb"));
  EXPECT_TRUE(a.revoked_node("node-x"));
  EXPECT_FALSE(a.revoked_node("node-y"));

  // Equal revisions: nothing moves either way.
  auto equal = b.round(wire, rng).value();
  EXPECT_FALSE(equal.learned);
  EXPECT_FALSE(equal.pushed);
}

TEST(Gossip, AnOlderOrEqualEnvelopeIsIgnoredWithoutASignatureCheck) {
  Coordinator c;
  int calls = 0;
  peer::Gossip g(c.verifier(&calls));
  ASSERT_TRUE(g.offer(c.fleet(7)).value());
  const int after_offer = calls;
  auto r = g.answer({7, c.fleet(7)}, "peer");
  ASSERT_TRUE(r);
  r = g.answer({3, c.fleet(3)}, "peer");
  ASSERT_TRUE(r);
  EXPECT_EQ(calls, after_offer) << "an envelope claiming no news cost a signature check";
  EXPECT_EQ(g.revision(), 7);
  // The answer to an older peer carries ours.
  ASSERT_TRUE(r->envelope);
  EXPECT_EQ(r->revision, 7);
  // An equal one gets none.
  EXPECT_FALSE(g.answer({7, std::nullopt}, "peer")->envelope);
}

TEST(Gossip, ForgedDamagedOrMislabelledEnvelopesAreRefusedAndTheHeldOneStays) {
  Coordinator c;
  Coordinator stranger;
  peer::Gossip g(c.verifier(), {.max_envelope = 4096});
  ASSERT_TRUE(g.offer(c.fleet(4, {"kept"})).value());
  const auto held = g.held()->envelope;

  auto other_key = g.answer({10, stranger.fleet(10, {}, {"everyone"})}, "evil");
  EXPECT_EQ(other_key.error(), peer::GossipError::bad_envelope) << other_key.error().message();
  auto wrong_kind = g.answer({10, c.fleet(10, {}, {}, protocol::kBundleKind)}, "evil");
  EXPECT_EQ(wrong_kind.error(), peer::GossipError::bad_envelope);
  auto mismatch = g.answer({11, c.fleet(10)}, "evil");
  EXPECT_EQ(mismatch.error(), peer::GossipError::revision_mismatch);
  auto truncated_bytes = c.fleet(12);
  truncated_bytes.resize(truncated_bytes.size() - 5);
  auto truncated = g.answer({12, truncated_bytes}, "evil");
  EXPECT_EQ(truncated.error(), peer::GossipError::bad_envelope);
  auto oversized = g.answer({13, crypto::Bytes(5000, 0x41)}, "evil");
  EXPECT_EQ(oversized.error(), peer::GossipError::oversized);

  EXPECT_EQ(g.revision(), 4);
  EXPECT_EQ(g.held()->envelope, held);
  EXPECT_TRUE(g.revoked_serial("kept"));
  EXPECT_FALSE(g.revoked_node("everyone"));
}

TEST(Gossip, RevokedPartnersAreNeverPickedAndNoPartnerIsAnError) {
  Coordinator c;
  peer::Gossip g(c.verifier());
  Wire wire;
  std::mt19937_64 rng(7);
  EXPECT_EQ(g.round(wire, rng).error(), peer::GossipError::no_partner);

  peer::Gossip good(c.verifier());
  wire.nodes = {{"good", &good}};
  ASSERT_TRUE(g.offer(c.fleet(3, {}, {"revoked"})).value());
  g.set_partners({peer_named("revoked"), peer_named("good")});
  for (int i = 0; i < 50; ++i) {
    auto r = g.round(wire, rng);
    ASSERT_TRUE(r) << r.error().message();  // "revoked" is not in the wire: picking it fails
    EXPECT_EQ(r->partner.node_id, "good");
  }
  g.set_partners({peer_named("revoked")});
  EXPECT_EQ(g.round(wire, rng).error(), peer::GossipError::no_partner);
}

TEST(Gossip, AdoptionIsReportedOnceWithItsSender) {
  Coordinator c;
  peer::Gossip g(c.verifier());
  std::vector<std::pair<std::int64_t, std::string>> seen;
  g.on_adopted([&](const peer::Gossip::Held& h, const std::string& from) {
    seen.emplace_back(h.fleet.revision, from);
  });
  ASSERT_TRUE(g.offer(c.fleet(2)).value());
  ASSERT_TRUE(g.answer({5, c.fleet(5)}, "node-b"));
  ASSERT_TRUE(g.answer({5, c.fleet(5)}, "node-c"));  // the same again: not adopted twice
  EXPECT_FALSE(g.offer(c.fleet(4)).value());
  ASSERT_EQ(seen.size(), 2U);
  EXPECT_EQ(seen[0], std::make_pair(std::int64_t{2}, std::string()));
  EXPECT_EQ(seen[1], std::make_pair(std::int64_t{5}, std::string("node-b")));
}

TEST(Ring, KeepersAreTheNextNodesAndFingersDoubleWithoutRepeats) {
  // Ring of 40, the node at position 10 (its first successor is 11).
  auto picks = protocol::ring_picks(
      40, 11, [](std::size_t at) { return at == 10; }, 3, 16);
  EXPECT_EQ(picks.keepers, (std::vector<std::size_t>{11, 12, 13}));
  EXPECT_EQ(picks.fingers, (std::vector<std::size_t>{14, 18, 26, 2}));
  // A node not on the ring (no address) still gets keepers.
  picks = protocol::ring_picks(
      3, 0, [](std::size_t) { return false; }, 3, 16);
  EXPECT_EQ(picks.keepers, (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_TRUE(picks.fingers.empty());
  // Smaller than the keepers wanted: every other node, never itself.
  picks = protocol::ring_picks(
      2, 1, [](std::size_t at) { return at == 0; }, 3, 16);
  EXPECT_EQ(picks.keepers, (std::vector<std::size_t>{1}));
  EXPECT_TRUE(protocol::ring_picks(
                  0, 0, [](std::size_t) { return false; }, 3, 16)
                  .keepers.empty());
}

}  // namespace
