#include "agent/peerlink/peerlink.hpp"

#include "shared/crypto/bytes.hpp"
#include "shared/crypto/encoding.hpp"
#include "shared/envelope/envelope.hpp"
#include "shared/http/beast_client/client.hpp"

#include <fmt/format.h>

#include <charconv>
#include <utility>

namespace lab::agent::peerlink {
namespace {

namespace crypto = shared::crypto;
namespace http = shared::http;
namespace protocol = shared::protocol;
using Clock = std::chrono::steady_clock;

// A revision as a header or query value: digits only, at most 18 of them.
std::optional<std::int64_t> parse_revision(std::optional<std::string_view> text) {
  if (!text || text->empty() || text->size() > 18)
    return std::nullopt;
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc() || end != text->data() + text->size() || v < 0)
    return std::nullopt;
  return v;
}

http::Response with_revision(http::Response r, std::int64_t revision) {
  r.headers.set(kFleetRevisionHeader, std::to_string(revision));
  return r;
}

http::Response envelope_response(crypto::ByteView bytes) {
  http::Response r;
  r.status = 200;
  r.headers.set("Content-Type", "application/vnd.lab.envelope");
  r.body.assign(crypto::as_chars(bytes));
  return r;
}

std::string url_of(const protocol::Peer& p) {
  return "https://" + p.address;
}

}  // namespace

http::TlsConfig tls_config(const cache::Identity& identity) {
  return {identity.certificate_pem, identity.tls_key_pem, identity.ca_pem};
}

http::Limits listener_limits() {
  http::Limits l;
  l.header_bytes = std::size_t{8} * 1024;
  l.body_bytes = kMaxFleetEnvelope;
  l.read_timeout = std::chrono::seconds(10);
  l.write_timeout = std::chrono::seconds(30);
  l.handshake_timeout = std::chrono::seconds(5);
  l.max_connections = 64;
  return l;
}

// ---- Service --------------------------------------------------------------------------------

Service::Service(cache::Cache& cache, peer::Gossip& gossip, IsRevoked revoked,
                 shared::ratelimit::LimiterOptions limits)
    : cache_(cache), gossip_(gossip), revoked_(std::move(revoked)), limiter_(limits) {}

http::Response Service::refuse(const http::Request& request, unsigned status,
                               std::string_view why) {
  // A refusal costs the caller more of its budget than an answer: a peer probing with bad
  // certificates or envelopes is soon answered 429 without more work (or more log lines).
  for (int i = 0; i < 4; ++i)
    limiter_.charge(request.peer.address, Clock::now());
  stats_.refused.fetch_add(1);
  const auto& cert = request.peer.client_cert;
  logger_.warn("peer request refused",
               {{"from", fmt::format("{}:{}", request.peer.address, request.peer.port)},
                {"node", cert ? cert->common_name : std::string()},
                {"path", request.path},
                {"status", status},
                {"reason", why}});
  return http::Response::error(status, why);
}

http::Response Service::handle(const http::Request& request) {
  const auto now = Clock::now();
  if (const auto wait = limiter_.retry_after(request.peer.address, now); wait > 0) {
    stats_.rate_limited.fetch_add(1);
    auto r = http::Response::error(429, "too many requests");
    r.headers.set("Retry-After", std::to_string(wait));
    r.close = true;
    return r;
  }
  limiter_.charge(request.peer.address, now);
  const auto& cert = request.peer.client_cert;
  if (!cert || !cert->verified || cert->common_name.empty())
    return refuse(request, 401, "a node certificate from the fleet CA is required");
  if (revoked_ && revoked_(cert->serial, cert->common_name))
    return refuse(request, 403, "this certificate or node is revoked");
  if (request.path == "/v1/peer/fleet" && request.method == "POST")
    return fleet(request, cert->common_name);
  if (request.path == "/v1/peer/envelope" && request.method == "GET")
    return envelope(request, cert->common_name);
  return refuse(request, 404, "no such route");
}

http::Response Service::fleet(const http::Request& request, const std::string& node) {
  const auto revision = parse_revision(request.header(kFleetRevisionHeader));
  if (!revision)
    return refuse(request, 400, "Lab-Fleet-Revision: expected a revision");
  peer::FleetMessage in{*revision, std::nullopt};
  if (!request.body.empty())
    in.envelope = crypto::to_bytes(request.body);
  auto out = gossip_.answer(in, node);
  if (!out)
    return refuse(request, 400, "fleet envelope refused: " + out.error().message());
  stats_.served.fetch_add(1);
  if (out->envelope)
    return with_revision(envelope_response(*out->envelope), out->revision);
  http::Response r;
  r.status = 204;
  return with_revision(std::move(r), out->revision);
}

http::Response Service::envelope(const http::Request& request, const std::string& node) {
  const auto since = parse_revision(request.query_param("since"));
  if (!since)
    return refuse(request, 400, "since: expected a revision");
  // Only the node itself is handed its envelope: labels are the fleet's business, not every
  // peer's, even though the secrets inside are sealed to that node.
  auto kept = cache_.kept_envelope(node);
  if (!kept) {
    logger_.error("reading a kept envelope failed",
                  {{"node", node}, {"error", kept.error().message()}});
    return http::Response::error(500, "kept envelope unreadable");
  }
  if (!*kept)
    return refuse(request, 404, "this node does not keep that node's envelope");
  stats_.served.fetch_add(1);
  if ((*kept)->revision <= *since) {
    http::Response r;
    r.status = 204;
    return r;
  }
  return envelope_response((*kept)->envelope);
}

// ---- Link -----------------------------------------------------------------------------------

Link::Link(cache::Cache& cache, peer::Gossip& gossip, LinkOptions options)
    : cache_(cache), gossip_(gossip), options_(options) {}

namespace {

Result<http::BeastClient> client_for(cache::Cache& cache, const protocol::Peer& peer,
                                     const LinkOptions& options, std::size_t max_body) {
  LAB_TRY_ASSIGN(cache::Identity id, cache.identity());
  http::BeastClientOptions o;
  o.base_url = url_of(peer);
  o.ca_pem = id.ca_pem;
  o.server_name = peer.node_id;  // the peer must hold the certificate of the node we meant
  o.client_cert_pem = id.certificate_pem;
  o.client_key_pem = id.tls_key_pem;
  o.connect_timeout = options.connect_timeout;
  o.timeout = options.timeout;
  o.max_body = max_body;
  return http::BeastClient(std::move(o));
}

}  // namespace

Result<peer::FleetMessage> Link::exchange(const protocol::Peer& partner,
                                          const peer::FleetMessage& message) {
  LAB_TRY_ASSIGN(http::BeastClient client,
                 client_for(cache_, partner, options_, kMaxFleetEnvelope));
  http::Headers extra;
  extra.set(kFleetRevisionHeader, std::to_string(message.revision));
  std::string_view body;
  if (message.envelope)
    body = crypto::as_chars(*message.envelope);
  LAB_TRY_ASSIGN(http::BeastResponse r,
                 client.request("POST", "/v1/peer/fleet", body,
                                message.envelope ? "application/vnd.lab.envelope" : "", extra));
  const auto revision = parse_revision(r.headers.get(kFleetRevisionHeader));
  if ((r.status != 200 && r.status != 204) || !revision) {
    return Error(
        peer::GossipError::bad_envelope,
        fmt::format("peer {} at {} answered HTTP {}", partner.node_id, partner.address, r.status));
  }
  peer::FleetMessage answer{*revision, std::nullopt};
  if (r.status == 200)
    answer.envelope = crypto::to_bytes(r.body);
  return answer;
}

std::int64_t Link::fleet_revision() const {
  return gossip_.revision();
}

void Link::offer_fleet(const crypto::Bytes& envelope) {
  if (auto r = gossip_.offer(envelope); !r) {
    logger_.warn("the coordinator's fleet envelope was refused", {{"error", r.error().message()}});
  }
}

Result<sync::Relayed> Link::ask_keeper(std::int64_t since, const protocol::Peer& keeper) {
  LAB_TRY_ASSIGN(http::BeastClient client, client_for(cache_, keeper, options_, kMaxNodeEnvelope));
  LAB_TRY_ASSIGN(http::BeastResponse r,
                 client.get(fmt::format("/v1/peer/envelope?since={}", since)));
  if (r.status != 200) {
    return Error(sync::SyncError::rejected, r.status == 204 ? std::string("it holds nothing newer")
                                                            : fmt::format("HTTP {}", r.status));
  }
  // Checked here as the cache will check it again when applying: a keeper that serves
  // something else (another node's envelope, an older one, another key's) is passed over for
  // the next keeper instead of ending the attempt.
  LAB_TRY_ASSIGN(cache::Identity id, cache_.identity());
  LAB_TRY_ASSIGN(auto raw_key, crypto::base64url_decode(id.bundle_key));
  LAB_TRY_ASSIGN(auto bundle_key, crypto::Ed25519PublicKey::from_raw(raw_key));
  auto opened = shared::envelope::open(crypto::as_bytes(r.body), bundle_key, protocol::kBundleKind);
  if (!opened)
    return Error(sync::SyncError::bad_response, "envelope refused: " + opened.error().message());
  auto bundle = protocol::parse_bundle(crypto::as_chars(opened->payload));
  if (!bundle)
    return Error(sync::SyncError::bad_response, "envelope refused: " + bundle.error().message());
  if (bundle->node_id != id.node_id) {
    return Error(sync::SyncError::bad_response,
                 fmt::format("envelope refused: it is node {}'s", bundle->node_id));
  }
  if (bundle->revision <= since) {
    return Error(
        sync::SyncError::bad_response,
        fmt::format("envelope refused: revision {} is not newer than {}", bundle->revision, since));
  }
  return sync::Relayed{crypto::to_bytes(r.body), cache::Origin{keeper.node_id, keeper.address, 0}};
}

std::optional<sync::Relayed> Link::ask_keepers(std::int64_t since,
                                               const std::vector<protocol::Peer>& keepers) {
  for (const auto& k : keepers) {
    if (gossip_.revoked_node(k.node_id))
      continue;
    auto r = ask_keeper(since, k);
    if (r)
      return std::move(*r);
    logger_.info("keeper had no newer envelope for this node",
                 {{"keeper", k.node_id}, {"address", k.address}, {"reason", r.error().message()}});
  }
  return std::nullopt;
}

}  // namespace lab::agent::peerlink
