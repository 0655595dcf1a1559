// Views and bundles: after every commit the views a change may touch are rebuilt from the
// model; only those that differ from the last signed one (revision and issued_at aside) get
// the current revision, are signed and published, and wake the watches waiting for them.
#include "bootstrap/coordinator/coordinator_impl.hpp"
#include "shared/crypto/aead.hpp"
#include "shared/crypto/encoding.hpp"
#include "shared/envelope/envelope.hpp"

#include <algorithm>
#include <atomic>
#include <thread>

namespace lab::bootstrap::coordinator {
namespace {

namespace cr = shared::crypto;
namespace proto = shared::protocol;

// Signing dominates a fleet-wide change; spread it over the cores when there is enough of it.
constexpr std::size_t kParallelThreshold = 64;
constexpr std::size_t kMaxThreads = 8;
constexpr std::size_t kChunk = 16;

void parallel_for(std::size_t n, const std::function<void(std::size_t)>& fn) {
  std::size_t threads = 1;
  if (n >= kParallelThreshold) {
    threads = std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, kMaxThreads);
  }
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (;;) {
      const std::size_t begin = next.fetch_add(kChunk);
      if (begin >= n)
        return;
      for (std::size_t i = begin; i < std::min(n, begin + kChunk); ++i)
        fn(i);
    }
  };
  std::vector<std::jthread> pool;
  pool.reserve(threads - 1);
  for (std::size_t t = 1; t < threads; ++t)
    pool.emplace_back(worker);
  worker();
}

bool same_view(const proto::Bundle& a, const proto::Bundle& b) {
  auto same_secret = [](const proto::SealedSecret& x, const proto::SealedSecret& y) {
    return x.name == y.name && x.version == y.version && x.sealed == y.sealed;
  };
  auto same_peer = [](const proto::Peer& x, const proto::Peer& y) {
    return x.node_id == y.node_id && x.address == y.address;
  };
  return a.node_id == b.node_id && a.name == b.name && a.state == b.state && a.labels == b.labels &&
         a.groups == b.groups && a.revoked_serials == b.revoked_serials &&
         std::equal(a.secrets.begin(), a.secrets.end(), b.secrets.begin(), b.secrets.end(),
                    same_secret) &&
         std::equal(a.peers.begin(), a.peers.end(), b.peers.begin(), b.peers.end(), same_peer);
}

}  // namespace

Deliveries CoordinatorImpl::rebuild_views(const Dirty& dirty) {
  const std::int64_t t = now();
  const std::int64_t revision = revision_.load();

  // Targets: every node, or those named; revoked and vanished nodes lose their view.
  std::vector<const NodeRecord*> targets;
  auto consider = [&](const NodeRecord& n) {
    if (n.state == "revoked") {
      views_.erase(n.id);
      hub_->remove(n.id);
      return;
    }
    targets.push_back(&n);
  };
  if (dirty.all) {
    targets.reserve(model_.nodes.size());
    for (const auto& [id, n] : model_.nodes)
      consider(n);
  } else {
    for (const auto& id : dirty.nodes) {
      if (auto it = model_.nodes.find(id); it != model_.nodes.end())
        consider(it->second);
    }
  }
  if (targets.empty())
    return {};

  // Shared by every view: revoked serials, and the ring of reachable active nodes (sorted by
  // id) from which each node gets its next max_peers neighbours.
  const std::vector<std::string> revoked = model_.revoked_serials(t);
  std::vector<proto::Peer> ring;
  for (const auto& [id, n] : model_.nodes) {
    if (is_active_state(n.state) && !n.peer_address.empty())
      ring.push_back({n.id, n.peer_address});
  }

  std::vector<ViewState*> states;
  states.reserve(targets.size());
  for (const NodeRecord* n : targets)
    states.push_back(&views_[n->id]);

  std::vector<std::shared_ptr<const std::string>> signed_out(targets.size());
  parallel_for(targets.size(), [&](std::size_t i) {
    const NodeRecord& n = *targets[i];
    ViewState& state = *states[i];
    proto::Bundle b;
    b.node_id = n.id;
    b.name = n.name;
    b.state = n.state;
    b.labels = n.labels;
    b.groups = groups_of(n.labels);
    b.revoked_serials = revoked;
    if (is_active_state(n.state)) {
      std::optional<cr::X25519PublicKey> to;
      for (const auto& [name, secret] : model_.secrets) {
        if (!secret.entitlement || !secret.entitlement->matches(n.labels))
          continue;
        SealedBox& box = state.boxes[name];
        if (box.version != secret.info.version || box.sealing_key != n.sealing_key ||
            box.sealed.empty()) {
          // Sealing is the expensive part; a box is made once per node, secret and version.
          if (!to) {
            auto raw = cr::base64url_decode(n.sealing_key);
            auto key = raw ? cr::X25519PublicKey::from_raw(*raw)
                           : Result<cr::X25519PublicKey>(raw.error());
            if (!key)
              break;
            to = std::move(*key);
          }
          auto clear = cr::unwrap(identity_.secrets_key, secret.wrapped, cr::as_bytes(name));
          if (!clear)
            continue;
          const std::string aad = proto::sealed_secret_aad(n.id, name, secret.info.version);
          auto sealed = cr::seal(*to, *clear, cr::as_bytes(aad));
          if (!sealed)
            continue;
          box = SealedBox{secret.info.version, n.sealing_key, cr::base64url_encode(*sealed)};
        }
        b.secrets.push_back({name, box.version, box.sealed});
      }
      if (!ring.empty() && options_.max_peers > 0) {
        auto pos = std::upper_bound(
            ring.begin(), ring.end(), n.id,
            [](const std::string& id, const proto::Peer& p) { return id < p.node_id; });
        for (std::size_t k = 0; k < ring.size() && b.peers.size() < options_.max_peers; ++k) {
          if (pos == ring.end())
            pos = ring.begin();
          if (pos->node_id != n.id)
            b.peers.push_back(*pos);
          ++pos;
        }
      }
    }
    if (state.published && same_view(state.view, b))
      return;
    b.revision = revision;
    b.issued_at = t;
    const std::string payload = proto::serialize(b);
    auto env =
        shared::envelope::seal(identity_.bundle_key, proto::kBundleKind, cr::as_bytes(payload));
    if (!env)
      return;
    signed_out[i] = std::make_shared<const std::string>(env->begin(), env->end());
    state.view = std::move(b);
    state.published = true;
  });

  std::vector<std::pair<std::string, SignedBundle>> changed;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (signed_out[i])
      changed.emplace_back(targets[i]->id, SignedBundle{revision, std::move(signed_out[i])});
  }
  return hub_->publish(std::move(changed));
}

Result<Coordinator::SignedBundle> CoordinatorImpl::bundle(const AgentIdentity& agent) {
  if (auto b = hub_->get(agent.node_id))
    return *b;
  return Error(CoordinatorError::not_found, "no bundle for node " + agent.node_id);
}

std::unique_ptr<Coordinator::Watch> CoordinatorImpl::watch(
    std::string_view node_id, std::int64_t since, std::function<void(SignedBundle)> changed) {
  return hub_->watch(std::string(node_id), since, std::move(changed));
}

}  // namespace lab::bootstrap::coordinator
