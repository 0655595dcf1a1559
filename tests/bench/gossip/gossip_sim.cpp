// Gossip convergence at fleet scale, in one process: N real gossip engines (agent/peer), the
// coordinator's real partner choice (shared/protocol ring_picks: 3 keepers and ring fingers)
// and a real Ed25519-signed fleet envelope, over an in-memory transport. One node hears of a
// new revocation first (as if it alone reached the coordinator); every live node starts one
// push-pull exchange per round, in a random order, and what a node learns in a round it passes
// on from the next round only (no multi-hop shortcuts inside a round). Reports the rounds until
// 50/90/99/100 % of live nodes hold it and the bytes each node sent meanwhile.
//
// Usage: bench_gossip_sim [--nodes N] [--seeds K] [--down PERCENT] [--interval SECONDS]
//                         [--max-rounds R] [--revoked SERIALS]
// Exits 1 when a run does not converge within --max-rounds (20) or a node sent 64 KiB or more.
#include "agent/peer/gossip.hpp"
#include "shared/crypto/keys.hpp"
#include "shared/envelope/envelope.hpp"
#include "shared/protocol/protocol.hpp"
#include "shared/protocol/ring.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace {

std::size_t envelope_bytes = 0;  // of the new fleet envelope, for the report

namespace peer = lab::agent::peer;
namespace crypto = lab::shared::crypto;
namespace protocol = lab::shared::protocol;

// HTTP/1.1 framing of one gossip exchange, estimated from what labd sends: the request line
// and headers (Host, Lab-Fleet-Revision, Content-Length, Content-Type) and the status line and
// headers of the answer. TLS records add ~30 bytes each; the handshake is not counted (every
// round costs it whether anything is revoked or not: see the idle figures of the agent bench).
constexpr std::size_t kRequestFraming = 160;
constexpr std::size_t kResponseFraming = 110;

struct Options {
  std::size_t nodes = 10000;
  int seeds = 5;
  int down_percent = 0;
  double interval = 10;
  int max_rounds = 20;
  int revoked = 8;  // serials the fleet envelope already holds (it grows by one)
};

struct Run {
  int rounds = -1;  // until every live node holds it; -1: not within max_rounds
  int r50 = -1, r90 = -1, r99 = -1;
  double mean_kib = 0, max_kib = 0;
  double seconds = 0;
};

class Sim final : public peer::FleetTransport {
 public:
  Sim(std::size_t n, const peer::VerifyFleet& verify) : bytes(n), start(n), learned_in(n, -1) {
    for (std::size_t i = 0; i < n; ++i) {
      nodes.push_back(std::make_unique<peer::Gossip>(verify));
      ids.push_back(fmt::format("n{:06}", i));
    }
  }

  lab::Result<peer::FleetMessage> exchange(const protocol::Peer& partner,
                                           const peer::FleetMessage& message) override {
    const auto j = static_cast<std::size_t>(std::stoul(partner.node_id.substr(1)));
    peer::FleetMessage out = message;
    if (learned_in[from] == round) {  // learned this round: speaks as it was at its start
      if (out.envelope)
        return lab::Error(peer::GossipError::no_partner, "learned this round");
      out.revision = start[from];
    }
    bytes[from] += kRequestFraming + 8 + (out.envelope ? out.envelope->size() : 0);
    if (down[j])
      return lab::Error(peer::GossipError::no_partner, "down");
    const bool knew = nodes[j]->revision() > start[j];
    auto answer = nodes[j]->answer(out, ids[from]);
    if (!answer)
      return answer.error();
    if (!knew && nodes[j]->revision() > start[j])
      learned_in[j] = round;
    if (learned_in[j] == round) {
      answer->revision = start[j];
      answer->envelope.reset();
    }
    bytes[j] += kResponseFraming + 8 + (answer->envelope ? answer->envelope->size() : 0);
    return answer;
  }

  std::vector<std::unique_ptr<peer::Gossip>> nodes;
  std::vector<std::string> ids;
  std::vector<bool> down;
  std::vector<std::size_t> bytes;
  std::vector<std::int64_t> start;
  std::vector<int> learned_in;
  std::size_t from = 0;
  int round = 0;
};

Run simulate(const Options& o, std::uint64_t seed, const crypto::Ed25519PrivateKey& key) {
  const auto pub = key.public_key();
  const peer::VerifyFleet verify = [pub](crypto::ByteView b) -> lab::Result<protocol::Fleet> {
    LAB_TRY_ASSIGN(auto env, lab::shared::envelope::open(b, pub, protocol::kFleetKind));
    return protocol::parse_fleet(crypto::as_chars(env.payload));
  };
  const auto seal = [&](std::int64_t revision, std::vector<std::string> serials) {
    const protocol::Fleet f{revision, 1'800'000'000, std::move(serials), {}};
    return lab::shared::envelope::seal(key, protocol::kFleetKind,
                                       crypto::as_bytes(protocol::serialize(f)))
        .value();
  };
  std::mt19937_64 rng(seed);
  Sim sim(o.nodes, verify);
  sim.down.assign(o.nodes, false);
  std::vector<std::size_t> order(o.nodes);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  const std::size_t down_count = o.nodes * static_cast<std::size_t>(o.down_percent) / 100;
  for (std::size_t k = 0; k < down_count; ++k)
    sim.down[order[k]] = true;
  const std::size_t seed_node = order[down_count];  // a live node

  // Everyone holds revision 100 (a few revoked serials); the seed hears of revision 101.
  std::vector<std::string> serials;
  serials.reserve(static_cast<std::size_t>(o.revoked) + 1);
  for (int s = 0; s < o.revoked; ++s)
    serials.push_back(fmt::format("{:032x}", s + 1));
  const auto old_env = seal(100, serials);
  serials.push_back(fmt::format("{:032x}", 999));
  const auto new_env = seal(101, serials);
  envelope_bytes = new_env.size();
  for (std::size_t i = 0; i < o.nodes; ++i) {
    (void)sim.nodes[i]->offer(old_env);
    const auto picks = protocol::ring_picks(
        o.nodes, (i + 1) % o.nodes, [i](std::size_t at) { return at == i; }, 3, 16);
    std::vector<protocol::Peer> partners;
    for (const auto at : picks.keepers)
      partners.push_back({sim.ids[at], "10.0.0.1:8444"});
    for (const auto at : picks.fingers)
      partners.push_back({sim.ids[at], "10.0.0.1:8444"});
    sim.nodes[i]->set_partners(std::move(partners));
  }
  (void)sim.nodes[seed_node]->offer(new_env);

  const std::size_t live = o.nodes - down_count;
  Run run;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::size_t> initiators;
  for (std::size_t i = 0; i < o.nodes; ++i) {
    if (!sim.down[i])
      initiators.push_back(i);
  }
  for (int r = 1; r <= o.max_rounds; ++r) {
    sim.round = r;
    for (std::size_t i = 0; i < o.nodes; ++i)
      sim.start[i] = sim.nodes[i]->revision();
    std::shuffle(initiators.begin(), initiators.end(), rng);
    for (const auto i : initiators) {
      sim.from = i;
      (void)sim.nodes[i]->round(sim, rng);
    }
    std::size_t holding = 0;
    for (const auto i : initiators)
      holding += sim.nodes[i]->revision() == 101 ? 1 : 0;
    const double share = static_cast<double>(holding) / static_cast<double>(live);
    if (run.r50 < 0 && share >= 0.5)
      run.r50 = r;
    if (run.r90 < 0 && share >= 0.9)
      run.r90 = r;
    if (run.r99 < 0 && share >= 0.99)
      run.r99 = r;
    if (holding == live) {
      run.rounds = r;
      break;
    }
  }
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double sum = 0;
  for (const auto i : initiators) {
    const double kib = static_cast<double>(sim.bytes[i]) / 1024.0;
    sum += kib;
    run.max_kib = std::max(run.max_kib, kib);
  }
  run.mean_kib = sum / static_cast<double>(live);
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--nodes")
      o.nodes = std::stoul(value);
    else if (flag == "--seeds")
      o.seeds = std::stoi(value);
    else if (flag == "--down")
      o.down_percent = std::stoi(value);
    else if (flag == "--interval")
      o.interval = std::stod(value);
    else if (flag == "--max-rounds")
      o.max_rounds = std::stoi(value);
    else if (flag == "--revoked")
      o.revoked = std::stoi(value);
    else {
      (void)std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  const auto key = crypto::Ed25519PrivateKey::generate().value();
  fmt::print(
      "gossip   {} nodes, {}% down, 3 keepers + ring fingers each, one push-pull per node per "
      "round, {} seeds\n",
      o.nodes, o.down_percent, o.seeds);
  std::vector<int> rounds;
  bool ok = true;
  for (int s = 0; s < o.seeds; ++s) {
    const Run r = simulate(o, 1000 + static_cast<std::uint64_t>(s), key);
    fmt::print(
        "         seed {}: all live nodes in {} rounds (50% {}, 90% {}, 99% {}) = {:.0f} s at "
        "{} s per round; sent per node {:.2f} KiB mean, {:.2f} KiB max; simulated in {:.1f} s\n",
        s, r.rounds, r.r50, r.r90, r.r99, r.rounds * o.interval, o.interval, r.mean_kib, r.max_kib,
        r.seconds);
    ok = ok && r.rounds > 0 && r.max_kib < 64.0;
    rounds.push_back(r.rounds);
  }
  std::sort(rounds.begin(), rounds.end());
  fmt::print("         fleet envelope: {} revoked serials, {} bytes\n", o.revoked + 1,
             envelope_bytes);
  fmt::print(
      "         rounds min {} median {} max {} (target: every node within {}, under 64 KiB per "
      "node; bytes: gossip messages with an estimated {}+{} bytes of HTTP framing per "
      "exchange, TLS handshakes not counted)\n",
      rounds.front(), rounds[rounds.size() / 2], rounds.back(), o.max_rounds, kRequestFraming,
      kResponseFraming);
  return ok ? 0 : 1;
}
