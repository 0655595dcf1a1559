#pragma once
// Who a node's peers are: the coordinator puts the nodes that advertise a peer address on a
// ring sorted by node id; a node's keepers are the next nodes after it, its further gossip
// partners the nodes 4, 8, 16, ... places on (so a revocation crosses the ring in about
// log2(N) rounds). One function, so the coordinator and the gossip simulation
// (tests/bench/gossip) pick the same partners.

#include <cstddef>
#include <vector>

namespace lab::shared::protocol {

struct RingPicks {
  std::vector<std::size_t> keepers;  // ring positions, nearest first
  std::vector<std::size_t> fingers;  // ring positions, none of them a keeper or the node
};

/// Partners of a node on a ring of `size` nodes. `first` is the position of the first node
/// after it (where it would be inserted); `is_self(position)` tells the node itself, when it is
/// on the ring.
template <class IsSelf>
RingPicks ring_picks(std::size_t size, std::size_t first, IsSelf is_self, std::size_t keepers,
                     std::size_t max_fingers) {
  RingPicks out;
  if (size == 0)
    return out;
  const auto at = [&](std::size_t k) { return (first + k) % size; };
  for (std::size_t k = 0; k < size && out.keepers.size() < keepers; ++k) {
    if (!is_self(at(k)))
      out.keepers.push_back(at(k));
  }
  for (std::size_t d = 4; d < size && out.fingers.size() < max_fingers; d *= 2) {
    const std::size_t p = at(d - 1);
    bool known = is_self(p);
    for (const std::size_t k : out.keepers)
      known = known || k == p;
    if (!known)
      out.fingers.push_back(p);
  }
  return out;
}

}  // namespace lab::shared::protocol
