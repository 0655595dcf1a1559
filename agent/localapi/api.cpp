#include "agent/localapi/api.hpp"

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

State::State(std::shared_ptr<const cache::View> view, shared::crypto::X25519PrivateKey key,
             std::string key_protection)
    : view_(std::move(view)), key_(std::move(key)), key_protection_(std::move(key_protection)) {}

std::shared_ptr<const cache::View> State::view() const {
  const std::lock_guard lock(mutex_);
  return view_;
}

void State::set_view(std::shared_ptr<const cache::View> view) {
  const std::lock_guard lock(mutex_);
  view_ = std::move(view);
}

void State::set_reachable(bool reachable, std::int64_t now) {
  reachable_.store(reachable);
  if (reachable)
    set_last_contact(now);
}

void State::set_last_contact(std::int64_t now) {
  const std::lock_guard lock(mutex_);
  if (view_ && view_->last_contact != now) {
    auto copy = std::make_shared<cache::View>(*view_);
    copy->last_contact = now;
    view_ = std::move(copy);
  }
}

std::optional<std::int64_t> staleness(const cache::View& view, std::int64_t now) {
  if (!view.last_contact)
    return std::nullopt;
  return std::max<std::int64_t>(0, now - *view.last_contact);
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
  constexpr std::string_view kSecrets = "/v1/secrets/";
  if (request.path.starts_with(kSecrets) && request.path.size() > kSecrets.size())
    return secret(request, std::string_view(request.path).substr(kSecrets.size()));
  return http::Response::error(404, "not found");
}

http::Response Api::labels() const {
  const auto view = state_->view();
  boost::json::object labels;
  for (const auto& [k, v] : view->labels)
    labels[k] = v;
  boost::json::object o;
  o["revision"] = view->revision;
  o["staleness_seconds"] = optional_int(staleness(*view, now_()));
  o["labels"] = std::move(labels);
  return json(200, o);
}

http::Response Api::status() const {
  const auto view = state_->view();
  boost::json::object o;
  o["node_id"] = view->node_id;
  o["name"] = view->name;
  o["state"] = view->state;
  o["revision"] = view->revision;
  o["issued_at"] = view->issued_at;
  o["last_contact"] = optional_int(view->last_contact);
  o["staleness_seconds"] = optional_int(staleness(*view, now_()));
  o["key_protection"] = state_->key_protection();
  o["coordinator_reachable"] = state_->reachable();
  o["labels"] = view->labels.size();
  o["secrets"] = view->secrets.size();
  return json(200, o);
}

http::Response Api::secret(const http::Request& request, std::string_view name) const {
  // Without credentials (never on a unix socket) nobody is trusted.
  if (!request.peer.credentials || !may_read_secret(rules_, *request.peer.credentials, name))
    return http::Response::error(403, "not allowed to read this secret");
  const auto view = state_->view();
  auto value = cache::open_secret(*view, state_->sealing_key(), name);
  if (!value) {
    if (value.error() == cache::CacheError::no_secret)
      return http::Response::error(404, "no such secret");
    return http::Response::error(500, "secret does not open");
  }
  http::Response r;
  r.status = 200;
  r.headers.set("Content-Type", "application/octet-stream");
  r.headers.set("Cache-Control", "no-store");
  r.headers.set("Lab-Revision", std::to_string(view->revision));
  r.body.assign(shared::crypto::as_chars(*value));
  return r;
}

}  // namespace lab::agent::localapi
