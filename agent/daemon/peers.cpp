#include "agent/daemon/peers.hpp"

#include "agent/peer/gossip.hpp"
#include "agent/peerlink/peerlink.hpp"
#include "shared/config/listen.hpp"
#include "shared/crypto/encoding.hpp"
#include "shared/crypto/random.hpp"
#include "shared/envelope/envelope.hpp"
#include "shared/http/server/server.hpp"
#include "shared/log/log.hpp"

#include <arpa/inet.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

namespace lab::agent::daemon {
namespace {

namespace crypto = shared::crypto;
namespace protocol = shared::protocol;
namespace http = shared::http;

// "https://host:port/..." → host and port (brackets of an IPv6 literal removed).
std::optional<std::pair<std::string, std::string>> host_port(std::string_view url) {
  const auto scheme = url.find("://");
  if (scheme == std::string_view::npos)
    return std::nullopt;
  url.remove_prefix(scheme + 3);
  url = url.substr(0, url.find('/'));
  std::string host;
  std::string port = "443";
  if (!url.empty() && url.front() == '[') {
    const auto close = url.find(']');
    if (close == std::string_view::npos)
      return std::nullopt;
    host = std::string(url.substr(1, close - 1));
    if (close + 1 < url.size() && url[close + 1] == ':')
      port = std::string(url.substr(close + 2));
  } else {
    const auto colon = url.rfind(':');
    host = std::string(url.substr(0, colon));
    if (colon != std::string_view::npos)
      port = std::string(url.substr(colon + 1));
  }
  return std::make_pair(host, port);
}

// The local address the kernel would send from to reach `url`'s host: a connected UDP socket
// sends nothing, it only picks the route.
std::optional<std::string> source_address_towards(std::string_view url) {
  const auto hp = host_port(url);
  if (!hp)
    return std::nullopt;
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(hp->first.c_str(), hp->second.c_str(), &hints, &found) != 0 || found == nullptr)
    return std::nullopt;
  std::optional<std::string> out;
  const int fd = ::socket(found->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && ::connect(fd, found->ai_addr, found->ai_addrlen) == 0) {
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    std::array<char, INET6_ADDRSTRLEN> text{};
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0) {  // NOLINT
      const void* addr = local.ss_family == AF_INET6
                             ? static_cast<const void*>(
                                   &reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr)  // NOLINT
                             : static_cast<const void*>(
                                   &reinterpret_cast<sockaddr_in*>(&local)->sin_addr);  // NOLINT
      if (inet_ntop(local.ss_family, addr, text.data(), text.size()) != nullptr)
        out = local.ss_family == AF_INET6 ? "[" + std::string(text.data()) + "]"
                                          : std::string(text.data());
    }
  }
  if (fd >= 0)
    ::close(fd);
  freeaddrinfo(found);
  return out;
}

bool is_loopback(std::string_view host) {
  return host.starts_with("127.") || host == "::1" || host == "[::1]";
}

bool is_wildcard(std::string_view host) {
  return host == "0.0.0.0" || host == "::";
}

}  // namespace

std::optional<std::string> advertised_peer_address(const Settings& s,
                                                   std::string_view coordinator_url) {
  if (s.peer_listen == "off")
    return std::nullopt;
  if (!s.peer_advertise.empty())
    return s.peer_advertise;
  auto listen = shared::config::parse_listen("peer.listen", s.peer_listen);
  if (!listen)
    return std::nullopt;
  if (!is_wildcard(listen->host))
    return s.peer_listen;  // an operator who names a loopback address means it (tests, labs)
  const auto source = source_address_towards(coordinator_url);
  if (!source || is_loopback(*source))
    return std::nullopt;
  return *source + ":" + std::to_string(listen->port);
}

struct Peers::Impl {
  Settings settings;
  cache::Cache& cache;
  std::shared_ptr<localapi::State> state;
  std::string node_id;
  shared::log::Logger logger{"peer"};
  peer::Gossip gossip;
  peerlink::Link link;
  peerlink::Service service;
  std::unique_ptr<http::Server> server;
  std::string advertised;
  std::thread thread;
  std::mutex mu;
  std::condition_variable wake;
  bool stopping = false;
  bool finished = false;  // the gossip thread left its loop

  Impl(const Settings& s, cache::Cache& c, std::shared_ptr<localapi::State> st, std::string node,
       peer::VerifyFleet verify)
      : settings(s),
        cache(c),
        state(std::move(st)),
        node_id(std::move(node)),
        gossip(std::move(verify)),
        link(c, gossip),
        service(c, gossip, [this](std::string_view serial, std::string_view peer_node) {
          return revoked(serial, peer_node);
        }) {}

  // The newest revocations this node holds: the fleet envelope's, and its own bundle's.
  bool revoked(std::string_view serial, std::string_view node) const {
    if (gossip.revoked_serial(serial) || gossip.revoked_node(node))
      return true;
    const auto served = state->served();
    const auto& serials = served->view.revoked_serials;
    return std::find(serials.begin(), serials.end(), serial) != serials.end();
  }

  void publish_status() {
    auto kept = cache.kept();
    state->set_peer_status(
        {advertised, gossip.revision(), kept ? kept->node_ids.size() : std::size_t{0}});
  }

  void adopted(const peer::Gossip::Held& held, const std::string& from) {
    if (auto stored = cache.store_fleet(held.envelope, held.fleet.revision); !stored) {
      logger.error("storing the fleet envelope failed", {{"error", stored.error().message()}});
    }
    logger.info("fleet envelope adopted",
                {{"revision", held.fleet.revision},
                 {"from", from.empty() ? std::string("coordinator") : from},
                 {"revoked_serials", held.fleet.revoked_serials.size()},
                 {"revoked_nodes", held.fleet.revoked_nodes.size()}});
    // Stop relaying for revoked nodes.
    if (auto kept = cache.kept(); kept) {
      std::vector<std::string> keep;
      for (auto& n : kept->node_ids) {
        if (!std::binary_search(held.fleet.revoked_nodes.begin(), held.fleet.revoked_nodes.end(),
                                n))
          keep.push_back(std::move(n));
      }
      (void)cache.retain_kept(keep);
    }
    if (std::binary_search(held.fleet.revoked_nodes.begin(), held.fleet.revoked_nodes.end(),
                           node_id)) {
      logger.error("this node is revoked by the coordinator",
                   {{"fleet_revision", held.fleet.revision}});
      state->set_failed("refused", "this node was revoked (fleet envelope revision " +
                                       std::to_string(held.fleet.revision) + ")");
    }
    publish_status();
  }

  void loop(sync::Syncer& syncer) {
    rounds(syncer);
    const std::lock_guard lock(mu);
    finished = true;
    wake.notify_all();
  }

  void rounds(sync::Syncer& syncer) {
    std::mt19937_64 rng(crypto::random_u64());
    for (;;) {
      // ±20% around the interval, so nodes started together do not gossip in step.
      const auto base =
          std::chrono::duration_cast<std::chrono::milliseconds>(settings.gossip_interval);
      std::uniform_int_distribution<std::int64_t> jitter(base.count() * 8 / 10,
                                                         base.count() * 12 / 10);
      {
        std::unique_lock lock(mu);
        if (wake.wait_for(lock, std::chrono::milliseconds(jitter(rng)), [&] { return stopping; }))
          return;
      }
      round(syncer, rng);
    }
  }

  void round(sync::Syncer& syncer, std::mt19937_64& rng) {
    const auto served = state->served();
    std::vector<protocol::Peer> partners = served->view.keepers;
    partners.insert(partners.end(), served->view.gossip.begin(), served->view.gossip.end());
    gossip.set_partners(std::move(partners));
    if (auto r = gossip.round(link, rng); r) {
      if (r->learned || r->pushed) {
        logger.info("gossip round", {{"partner", r->partner.node_id},
                                     {"learned", r->learned},
                                     {"pushed", r->pushed},
                                     {"fleet_revision", r->revision}});
      }
    } else if (r.error() != peer::GossipError::no_partner) {
      logger.debug("gossip round failed", {{"error", r.error().message()}});
    }
    if (!state->reachable()) {
      if (auto relayed = syncer.sync_from_keepers(); !relayed) {
        logger.warn("applying an envelope from a keeper failed",
                    {{"error", relayed.error().message()}});
      }
    }
    publish_status();
    // A round's TLS handshakes (and the requests served since the last round) leave freed heap
    // behind in the agent's one arena; give it back so the listener's idle cost stays small.
    cache.release_memory();
    malloc_trim(0);
  }
};

Peers::Peers(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Peers::~Peers() {
  if (impl_ && impl_->thread.joinable()) {
    {
      const std::lock_guard lock(impl_->mu);
      impl_->stopping = true;
    }
    impl_->wake.notify_all();
    impl_->thread.join();
  }
}

bool Peers::join_for(std::chrono::milliseconds timeout) {
  if (!impl_->thread.joinable())
    return true;
  std::unique_lock lock(impl_->mu);
  impl_->stopping = true;
  impl_->wake.notify_all();
  if (!impl_->wake.wait_for(lock, timeout, [&] { return impl_->finished; }))
    return false;
  lock.unlock();
  impl_->thread.join();
  return true;
}

Result<std::unique_ptr<Peers>> Peers::create(const Settings& settings, cache::Cache& cache,
                                             const cache::Identity& identity,
                                             std::shared_ptr<localapi::State> state) {
  LAB_TRY_ASSIGN(auto raw_key, crypto::base64url_decode(identity.bundle_key));
  LAB_TRY_ASSIGN(auto bundle_key, crypto::Ed25519PublicKey::from_raw(raw_key));
  peer::VerifyFleet verify = [bundle_key](crypto::ByteView bytes) -> Result<protocol::Fleet> {
    LAB_TRY_ASSIGN(auto env, shared::envelope::open(bytes, bundle_key, protocol::kFleetKind));
    return protocol::parse_fleet(crypto::as_chars(env.payload));
  };
  auto impl = std::make_unique<Impl>(settings, cache, std::move(state), identity.node_id,
                                     std::move(verify));
  LAB_TRY_ASSIGN(auto held, cache.fleet());
  if (held) {
    if (auto r = impl->gossip.offer(*held); !r) {
      impl->logger.warn("the cached fleet envelope does not verify; waiting for a newer one",
                        {{"error", r.error().message()}});
    }
  }
  Impl* raw = impl.get();
  impl->gossip.on_adopted(
      [raw](const peer::Gossip::Held& h, const std::string& from) { raw->adopted(h, from); });
  return std::unique_ptr<Peers>(new Peers(std::move(impl)));
}

Result<void> Peers::listen(boost::asio::io_context& io, const std::string& address) {
  LAB_TRY_ASSIGN(auto where,
                 shared::config::parse_listen("peer.listen", impl_->settings.peer_listen));
  LAB_TRY_ASSIGN(cache::Identity id, impl_->cache.identity());
  Impl* raw = impl_.get();
  impl_->server = std::make_unique<http::Server>(
      io,
      [raw](const http::Request& req, const http::Reply& reply) {
        reply(raw->service.handle(req));
      },
      peerlink::listener_limits());
  LAB_TRY_ASSIGN(auto port,
                 impl_->server->listen_tcp(where.host, where.port, peerlink::tls_config(id)));
  impl_->advertised = address;
  impl_->logger.info("listening for peers", {{"listen", where.host + ":" + std::to_string(port)},
                                             {"advertised", address}});
  impl_->publish_status();
  return {};
}

sync::PeerSync& Peers::peer_sync() {
  return impl_->link;
}

void Peers::start(sync::Syncer& syncer) {
  impl_->publish_status();
  impl_->thread = std::thread([this, &syncer] { impl_->loop(syncer); });
}

void Peers::reload_certificate() {
  if (!impl_->server)
    return;
  auto id = impl_->cache.identity();
  if (!id)
    return;
  if (auto r = impl_->server->reload_tls(peerlink::tls_config(*id)); !r) {
    impl_->logger.error("the peer listener keeps its old certificate",
                        {{"error", r.error().message()}});
  }
}

void Peers::stop(std::function<void()> stopped) {
  {
    const std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  if (impl_->server) {
    impl_->server->stop(std::move(stopped));
    return;
  }
  stopped();
}

}  // namespace lab::agent::daemon
