#include "agent/localapi/api.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>

namespace lab::agent::localapi {
namespace {

namespace http = shared::http;

http::Response json(unsigned status, const boost::json::object& o) {
  return http::Response::json(status, boost::json::serialize(o) + "\n");
}

boost::json::value optional_int(std::optional<std::int64_t> v) {
  return v ? boost::json::value(*v) : boost::json::value(nullptr);
}

}  // namespace

bool may_read_secret(const std::vector<SecretAccess>& rules, const http::Peer::Credentials& who,
                     std::string_view name) {
  if (who.uid == 0)
    return true;
  return std::any_of(rules.begin(), rules.end(), [&](const SecretAccess& r) {
    if (r.name != name)
      return false;
    return std::find(r.uids.begin(), r.uids.end(), who.uid) != r.uids.end() ||
           std::find(r.gids.begin(), r.gids.end(), who.gid) != r.gids.end();
  });
}

std::shared_ptr<const Served> make_served(const cache::View& view) {
  auto s = std::make_shared<Served>();
  s->view.node_id = view.node_id;
  s->view.name = view.name;
  s->view.state = view.state;
  s->view.revision = view.revision;
  s->view.issued_at = view.issued_at;
  s->view.confirmed_at = view.confirmed_at;
  s->view.groups = view.groups;
  s->view.secrets = view.secrets;
  s->view.keepers = view.keepers;
  s->view.gossip = view.gossip;
  s->view.revoked_serials = view.revoked_serials;
  s->view.checks = view.checks;
  s->view.origin = view.origin;
  s->label_count = view.labels.size();
  std::string& out = s->labels_json;
  std::size_t size = 2;
  for (const auto& [k, v] : view.labels)
    size += k.size() + v.size() + 6;
  out.reserve(size);
  out += '{';
  for (const auto& [k, v] : view.labels) {
    if (out.size() > 1)
      out += ',';
    out += boost::json::serialize(boost::json::string_view(k));
    out += ':';
    out += boost::json::serialize(boost::json::string_view(v));
  }
  out += '}';
  out.shrink_to_fit();
  return s;
}

State::State(const cache::View& view, shared::crypto::X25519PrivateKey key,
             std::string key_protection)
    : served_(make_served(view)), key_(std::move(key)), key_protection_(std::move(key_protection)) {
  if (view.confirmed_at) {
    // A confirmation was an answer too: the best known lower bound of the last one.
    last_contact_ = *view.confirmed_at;
    last_confirmed_ = *view.confirmed_at;
  }
}

namespace {

// Moves `t` forward to `now`, never back: rounds may report out of order across threads.
void advance(std::atomic<std::int64_t>& t, std::int64_t now) {
  std::int64_t seen = t.load();
  while (seen < now && !t.compare_exchange_weak(seen, now)) {
  }
}

}  // namespace

std::shared_ptr<const Served> State::served() const {
  const std::lock_guard lock(mutex_);
  return served_;
}

void State::set_view(const cache::View& view) {
  auto fresh = make_served(view);  // outside the lock: readers keep the old one meanwhile
  if (view.confirmed_at) {
    set_last_contact(*view.confirmed_at);
    advance(last_confirmed_, *view.confirmed_at);
  }
  const std::lock_guard lock(mutex_);
  served_ = std::move(fresh);
}

void State::set_reachable(bool reachable, std::int64_t now) {
  reachable_.store(reachable);
  if (reachable)
    set_last_contact(now);
}

void State::set_last_contact(std::int64_t now) {
  advance(last_contact_, now);
}

void State::set_confirmed(std::int64_t now) {
  set_last_contact(now);
  advance(last_confirmed_, now);
  const std::lock_guard lock(mutex_);
  sync_ = SyncStatus{"ok", std::nullopt};
}

void State::set_failed(std::string sync, std::string error) {
  const std::lock_guard lock(mutex_);
  sync_ = SyncStatus{std::move(sync), std::move(error)};
}

std::optional<std::int64_t> State::last_contact() const noexcept {
  const std::int64_t t = last_contact_.load();
  return t == kNever ? std::nullopt : std::optional<std::int64_t>(t);
}

std::optional<std::int64_t> State::last_confirmed() const noexcept {
  const std::int64_t t = last_confirmed_.load();
  return t == kNever ? std::nullopt : std::optional<std::int64_t>(t);
}

SyncStatus State::sync_status() const {
  const std::lock_guard lock(mutex_);
  return sync_;
}

void State::set_peer_status(PeerStatus peer) {
  const std::lock_guard lock(mutex_);
  peer_ = std::move(peer);
}

std::optional<PeerStatus> State::peer_status() const {
  const std::lock_guard lock(mutex_);
  return peer_;
}

void State::set_checks(std::vector<shared::protocol::CheckResult> checks) {
  const std::lock_guard lock(mutex_);
  checks_ = std::move(checks);
}

std::vector<shared::protocol::CheckResult> State::checks() const {
  const std::lock_guard lock(mutex_);
  return checks_;
}

void State::set_config_run(boost::json::object run) {
  const std::lock_guard lock(mutex_);
  config_run_ = std::move(run);
}

boost::json::object State::config_run() const {
  const std::lock_guard lock(mutex_);
  return config_run_;
}

void State::set_certificate_not_after(std::int64_t not_after) noexcept {
  certificate_not_after_.store(not_after);
}

std::optional<std::int64_t> State::certificate_not_after() const noexcept {
  const std::int64_t t = certificate_not_after_.load();
  return t == kNever ? std::nullopt : std::optional<std::int64_t>(t);
}

std::optional<std::int64_t> staleness(std::optional<std::int64_t> last_confirmed,
                                      std::int64_t now) {
  if (!last_confirmed)
    return std::nullopt;
  return std::max<std::int64_t>(0, now - *last_confirmed);
}

Api::Api(std::shared_ptr<State> state, std::vector<SecretAccess> rules,
         std::function<std::int64_t()> now)
    : state_(std::move(state)), rules_(std::move(rules)), now_(std::move(now)) {}

http::Response Api::handle(const http::Request& request) const {
  if (request.method != "GET" && request.method != "HEAD")
    return http::Response::error(405, "method not allowed");
  if (request.path == "/v1/labels")
    return labels();
  if (request.path == "/v1/status")
    return status();
  if (request.path == "/v1/checks")
    return checks();
  if (request.path == "/metrics") {
    auto r = http::Response::text(200, metrics_text(*state_, now_()));
    r.headers.set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    return r;
  }
  constexpr std::string_view kSecrets = "/v1/secrets/";
  if (request.path.starts_with(kSecrets) && request.path.size() > kSecrets.size())
    return secret(request, std::string_view(request.path).substr(kSecrets.size()));
  return http::Response::error(404, "not found");
}

http::Response Api::labels() const {
  const auto served = state_->served();
  const auto stale = staleness(state_->last_confirmed(), now_());
  // Spliced as text: the labels are kept serialized (see Served).
  std::string body = R"({"revision":)";
  body += std::to_string(served->view.revision);
  body += R"(,"staleness_seconds":)";
  body += stale ? std::to_string(*stale) : std::string("null");
  body.reserve(body.size() + served->labels_json.size() + 16);
  body += R"(,"labels":)";
  body += served->labels_json;
  body += "}\n";
  return http::Response::json(200, std::move(body));
}

http::Response Api::status() const {
  const auto served = state_->served();
  const cache::View& view = served->view;
  const auto confirmed = state_->last_confirmed();
  const SyncStatus sync = state_->sync_status();
  boost::json::object o;
  o["node_id"] = view.node_id;
  o["name"] = view.name;
  // The state the coordinator last gave the node, until it refuses the node (revoked, or past
  // the renewal grace): then the cached "ready" is no longer true.
  o["state"] = sync.sync == "refused" ? std::string("refused") : view.state;
  o["revision"] = view.revision;
  o["issued_at"] = view.issued_at;
  o["sync"] = sync.sync;
  o["last_error"] = sync.last_error ? boost::json::value(*sync.last_error) : nullptr;
  o["last_contact"] = optional_int(state_->last_contact());
  o["last_confirmed"] = optional_int(confirmed);
  o["staleness_seconds"] = optional_int(staleness(confirmed, now_()));
  // Where the view came from: the coordinator, or a peer relaying the coordinator's envelope
  // (then staleness counts from the last coordinator answer, and view_age from its signing).
  if (view.origin) {
    o["source"] = view.origin->peer_node.empty() ? "coordinator" : "peer";
    if (!view.origin->peer_node.empty())
      o["source_peer"] = view.origin->peer_node + "@" + view.origin->peer_address;
    o["applied_at"] = view.origin->applied_at;
  } else {
    o["source"] = nullptr;
  }
  o["view_age_seconds"] =
      view.revision > 0 ? boost::json::value(std::max<std::int64_t>(0, now_() - view.issued_at))
                        : boost::json::value(nullptr);
  if (const auto peer = state_->peer_status()) {
    o["peer_listen"] =
        peer->listen.empty() ? boost::json::value(nullptr) : boost::json::value(peer->listen);
    o["fleet_revision"] = peer->fleet_revision;
    o["kept_nodes"] = peer->kept_nodes;
  }
  o["key_protection"] = state_->key_protection();
  o["coordinator_reachable"] = state_->reachable();
  o["labels"] = served->label_count;
  o["secrets"] = view.secrets.size();
  const auto results = state_->checks();
  o["health"] = shared::protocol::health_of(results);
  boost::json::array checks;
  for (const auto& r : results)
    checks.push_back(shared::protocol::check_result_to_json(r));
  o["checks"] = std::move(checks);
  if (auto run = state_->config_run(); !run.empty())
    o["config_run"] = std::move(run);
  return json(200, o);
}

http::Response Api::checks() const {
  boost::json::array a;
  for (const auto& r : state_->checks())
    a.push_back(shared::protocol::check_result_to_json(r));
  return http::Response::json(200, boost::json::serialize(a) + "\n");
}

http::Response Api::secret(const http::Request& request, std::string_view name) const {
  // Without credentials (never on a unix socket) nobody is trusted.
  if (!request.peer.credentials || !may_read_secret(rules_, *request.peer.credentials, name))
    return http::Response::error(403, "not allowed to read this secret");
  const auto served = state_->served();
  auto value = cache::open_secret(served->view, state_->sealing_key(), name);
  if (!value) {
    if (value.error() == cache::CacheError::no_secret)
      return http::Response::error(404, "no such secret");
    return http::Response::error(500, "secret does not open");
  }
  http::Response r;
  r.status = 200;
  r.headers.set("Content-Type", "application/octet-stream");
  r.headers.set("Cache-Control", "no-store");
  r.headers.set("Lab-Revision", std::to_string(served->view.revision));
  r.body.assign(shared::crypto::as_chars(*value));
  return r;
}

}  // namespace lab::agent::localapi
