// Views and bundles: after every commit the views a change may touch are rebuilt from the
// model (state mutex held); only those that differ from the last signed one (revision and
// issued_at aside) get the current revision. They are signed after the mutex is released, in
// chunks, and each chunk is published and wakes its watches as soon as it is signed, so the
// first agents have a fleet-wide change while the rest of the fleet is still being signed.
#include "bootstrap/coordinator/coordinator_impl.hpp"
#include "shared/crypto/aead.hpp"
#include "shared/crypto/encoding.hpp"
#include "shared/envelope/envelope.hpp"
#include "shared/protocol/ring.hpp"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <iterator>
#include <optional>
#include <thread>

namespace lab::bootstrap::coordinator {
namespace {

namespace cr = shared::crypto;
namespace proto = shared::protocol;

// Building views and signing them are spread over the cores this process may run on (its
// CPU affinity, not the machine's core count: under `taskset -c 0` a second thread only adds
// switches) when there is enough of it.
constexpr std::size_t kParallelThreshold = 64;
constexpr std::size_t kMaxThreads = 8;
constexpr std::size_t kBuildChunk = 16;
// Signed views are published, and their watches woken, this many at a time.
constexpr std::size_t kDeliveryChunk = 64;

std::size_t usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0)
    return std::max(1, CPU_COUNT(&set));
  return std::max(1U, std::thread::hardware_concurrency());
}

// Calls fn(begin, end) over [0, n) in chunks of `chunk`, on up to usable_cores() threads.
void parallel_chunks(std::size_t n, std::size_t chunk,
                     const std::function<void(std::size_t, std::size_t)>& fn) {
  std::size_t threads = 1;
  if (n >= kParallelThreshold)
    threads = std::clamp<std::size_t>(usable_cores(), 1, kMaxThreads);
  threads = std::min(threads, (n + chunk - 1) / chunk);
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (;;) {
      const std::size_t begin = next.fetch_add(chunk);
      if (begin >= n)
        return;
      fn(begin, std::min(n, begin + chunk));
    }
  };
  std::vector<std::jthread> pool;
  pool.reserve(threads > 0 ? threads - 1 : 0);
  for (std::size_t t = 1; t < threads; ++t)
    pool.emplace_back(worker);
  worker();
}

void parallel_for(std::size_t n, const std::function<void(std::size_t)>& fn) {
  parallel_chunks(n, kBuildChunk, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i)
      fn(i);
  });
}

// One bundle envelope. shared::envelope::seal derives the public key and its id again for
// every call, which costs a third of a signature; a fleet-wide change signs thousands of views
// with one key, so the id comes from the caller and the signature is put where the wire format
// (envelope.hpp) has it: the last 64 bytes, covering every byte before them.
std::optional<std::string> seal_bundle(const cr::Ed25519PrivateKey& key, const std::string& key_id,
                                       std::string_view payload) {
  shared::envelope::Envelope env;
  env.kind = proto::kBundleKind;
  env.key_id = key_id;
  env.payload.assign(payload.begin(), payload.end());
  cr::Bytes bytes = shared::envelope::serialize(env);
  if (bytes.size() < env.signature.size())
    return std::nullopt;
  const std::size_t signed_size = bytes.size() - env.signature.size();
  const cr::Signature sig = key.sign(cr::ByteView(bytes.data(), signed_size));
  std::copy(sig.begin(), sig.end(), bytes.begin() + static_cast<std::ptrdiff_t>(signed_size));
  return std::string(bytes.begin(), bytes.end());
}

bool same_view(const proto::Bundle& a, const proto::Bundle& b) {
  auto same_secret = [](const proto::SealedSecret& x, const proto::SealedSecret& y) {
    return x.name == y.name && x.version == y.version && x.sealed == y.sealed;
  };
  auto same_peer = [](const proto::Peer& x, const proto::Peer& y) {
    return x.node_id == y.node_id && x.address == y.address;
  };
  if (!std::equal(a.gossip.begin(), a.gossip.end(), b.gossip.begin(), b.gossip.end(), same_peer))
    return false;
  return a.node_id == b.node_id && a.name == b.name && a.state == b.state && a.labels == b.labels &&
         a.groups == b.groups && a.revoked_serials == b.revoked_serials && a.checks == b.checks &&
         std::equal(a.secrets.begin(), a.secrets.end(), b.secrets.begin(), b.secrets.end(),
                    same_secret) &&
         std::equal(a.peers.begin(), a.peers.end(), b.peers.begin(), b.peers.end(), same_peer);
}

}  // namespace

Deliveries CoordinatorImpl::rebuild_views(const Dirty& dirty) {
  const std::int64_t t = now();
  const std::int64_t revision = revision_.load();

  // Targets: every node, or those named; revoked and vanished nodes lose their view, and
  // their parked watches are answered.
  Deliveries out;
  std::vector<const NodeRecord*> targets;
  auto consider = [&](const NodeRecord& n) {
    if (n.state == "revoked") {
      views_.erase(n.id);
      auto calls = hub_->revoke(n.id);
      std::move(calls.begin(), calls.end(), std::back_inserter(out.calls));
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
  // The fleet envelope: what revocation every node must learn, even through peers.
  const std::vector<std::string> revoked = model_.revoked_serials(t);
  {
    std::vector<std::string> revoked_nodes;
    for (const auto& [id, n] : model_.nodes) {
      if (n.state == "revoked")
        revoked_nodes.push_back(id);
    }
    std::sort(revoked_nodes.begin(), revoked_nodes.end());
    if (!fleet_view_ || fleet_view_->revoked_serials != revoked ||
        fleet_view_->revoked_nodes != revoked_nodes) {
      fleet_view_ = proto::Fleet{revision, t, revoked, std::move(revoked_nodes)};
      out.fleet = fleet_view_;
    }
  }
  if (targets.empty())
    return out;

  // The ring of reachable active nodes (sorted by id): each node's keepers are the next
  // `keepers` after it, its further gossip partners the nodes 4, 8, 16, ... places on.
  std::vector<proto::Peer> ring;
  for (const auto& [id, n] : model_.nodes) {
    if (is_active_state(n.state) && !n.peer_address.empty())
      ring.push_back({n.id, n.peer_address});
  }

  std::vector<ViewState*> states;
  states.reserve(targets.size());
  for (const NodeRecord* n : targets)
    states.push_back(&views_[n->id]);

  std::vector<std::optional<proto::Bundle>> changed(targets.size());
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
    b.checks = checks_of(n.labels);
    if (is_active_state(n.state)) {
      std::optional<cr::X25519PublicKey> to;
      for (const auto& [name, secret] : model_.secrets) {
        if (!secret.entitlement || !secret.entitlement->matches(n.labels) ||
            !protection_meets(n.key_protection, secret.info.require)) {
          continue;
        }
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
      if (!ring.empty()) {
        const auto first = static_cast<std::size_t>(
            std::upper_bound(
                ring.begin(), ring.end(), n.id,
                [](const std::string& id, const proto::Peer& p) { return id < p.node_id; }) -
            ring.begin());
        const auto picks = proto::ring_picks(
            ring.size(), first, [&](std::size_t at) { return ring[at].node_id == n.id; },
            options_.keepers, options_.gossip_partners);
        for (const std::size_t at : picks.keepers)
          b.peers.push_back(ring[at]);
        for (const std::size_t at : picks.fingers)
          b.gossip.push_back(ring[at]);
      }
    }
    if (state.published && same_view(state.view, b))
      return;
    b.revision = revision;
    b.issued_at = t;
    state.view = b;
    state.published = true;
    changed[i] = std::move(b);
  });

  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (changed[i])
      out.views.push_back({targets[i]->id, std::move(*changed[i])});
  }
  return out;
}

void CoordinatorImpl::deliver(Deliveries deliveries) {
  for (auto& call : deliveries.calls)
    call();
  if (deliveries.fleet) {
    const std::string payload = proto::serialize(*deliveries.fleet);
    if (auto env = shared::envelope::seal(identity_.bundle_key, proto::kFleetKind,
                                          cr::as_bytes(payload))) {
      hub_->publish_fleet({deliveries.fleet->revision,
                           std::make_shared<const std::string>(env->begin(), env->end()), false,
                           false});
    }
  }
  auto& views = deliveries.views;
  if (views.empty())
    return;
  // Keepers first, so that publishing a view nudges the keepers it has now.
  for (const auto& v : views) {
    std::vector<std::string> keepers;
    keepers.reserve(v.view.peers.size());
    for (const auto& p : v.view.peers)
      keepers.push_back(p.node_id);
    hub_->set_keepers(v.node_id, std::move(keepers));
  }
  const std::string key_id = identity_.bundle_key.public_key().key_id();
  parallel_chunks(views.size(), kDeliveryChunk, [&](std::size_t begin, std::size_t end) {
    std::vector<std::pair<std::string, SignedBundle>> chunk;
    chunk.reserve(end - begin);
    for (std::size_t i = begin; i < end; ++i) {
      auto env = seal_bundle(identity_.bundle_key, key_id, proto::serialize(views[i].view));
      if (!env)
        continue;
      chunk.emplace_back(std::move(views[i].node_id),
                         SignedBundle{views[i].view.revision,
                                      std::make_shared<const std::string>(std::move(*env))});
    }
    for (auto& call : hub_->publish(std::move(chunk)))
      call();
  });
}

Result<Coordinator::SignedBundle> CoordinatorImpl::bundle(const AgentIdentity& agent) {
  if (auto b = hub_->get(agent.node_id))
    return *b;
  return Error(CoordinatorError::not_found, "no bundle for node " + agent.node_id);
}

std::unique_ptr<Coordinator::Watch> CoordinatorImpl::watch(
    std::string_view node_id, std::int64_t since, std::optional<std::int64_t> kept_since,
    std::function<void(SignedBundle)> changed) {
  return hub_->watch(std::string(node_id), since, kept_since, std::move(changed));
}

std::int64_t CoordinatorImpl::kept_revision(std::string_view node_id) {
  return hub_->kept_revision(std::string(node_id));
}

proto::Kept CoordinatorImpl::kept(const AgentIdentity& agent, std::int64_t since) {
  return hub_->kept(agent.node_id, since);
}

Coordinator::SignedBundle CoordinatorImpl::fleet() {
  return hub_->fleet();
}

}  // namespace lab::bootstrap::coordinator
