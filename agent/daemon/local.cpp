#include "agent/daemon/local.hpp"

#include "agent/daemon/node.hpp"
#include "agent/localapi/api.hpp"
#include "shared/http/beast_client/client.hpp"
#include "shared/json/json.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <unistd.h>

namespace lab::agent::daemon {
namespace {

namespace http = shared::http;

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<http::BeastResponse> ask_daemon(const Settings& s, std::string_view path) {
  http::BeastClientOptions o;
  o.base_url = "http://localhost";
  o.unix_socket = s.socket.string();
  o.connect_timeout = std::chrono::seconds(2);
  o.timeout = std::chrono::seconds(10);
  o.max_body = std::size_t{16} * 1024 * 1024;
  http::BeastClient c(std::move(o));
  return c.get(path);
}

// The local API over the cache, in this process, with this process's credentials.
Result<LocalAnswer> ask_cache(const Settings& s, std::string_view path) {
  LAB_TRY_ASSIGN(OpenNode node, open_node(s));
  LAB_TRY_ASSIGN(cache::View view, node.cache->view());
  LAB_TRY_ASSIGN(auto key, shared::crypto::X25519PrivateKey::from_raw(node.identity.sealing_key));
  auto state = std::make_shared<localapi::State>(view, std::move(key), node.key->status());
  // The checks' states as labd last kept them: what it knew when it stopped.
  if (auto checks = node.cache->check_results())
    state->set_checks(std::move(*checks));
  const localapi::Api api(state, s.secret_access, unix_now);
  http::Request req;
  req.method = "GET";
  req.target = std::string(path);
  req.path = std::string(path);
  req.peer.credentials = http::Peer::Credentials{::getpid(), ::geteuid(), ::getegid()};
  auto r = api.handle(req);
  return LocalAnswer{r.status, std::move(r.body), false};
}

}  // namespace

bool daemon_answers(const Settings& s) {
  return static_cast<bool>(ask_daemon(s, "/v1/status"));
}

Result<LocalAnswer> local_get(const Settings& s, std::string_view path) {
  auto r = ask_daemon(s, path);
  if (r)
    return LocalAnswer{r->status, std::move(r->body), true};
  auto local = ask_cache(s, path);
  if (local)
    return local;
  if (local.error() == DaemonError::not_joined)
    return local.error();
  return Error(DaemonError::not_running,
               fmt::format("the local API at {} does not answer ({}) and the cache cannot be "
                           "opened here ({})",
                           s.socket.string(), r.error().message(), local.error().message()));
}

Result<std::string> status_json(const Settings& s) {
  LAB_TRY_ASSIGN(auto record, read_node_record(s));
  if (!record) {
    boost::json::object o;
    o["joined"] = false;
    o["key_protection"] = keystore::protection_name(s.key_protection);
    return boost::json::serialize(o);
  }
  auto answer = local_get(s, "/v1/status");
  boost::json::object o;
  if (answer && answer->status == 200) {
    if (auto parsed = shared::json::parse_object(answer->body); parsed)
      o = std::move(*parsed);
  }
  if (o.empty()) {
    o["node_id"] = record->node_id;
    o["name"] = record->name;
    o["error"] = answer ? fmt::format("local API answered HTTP {}", answer->status)
                        : answer.error().message();
  }
  o["joined"] = true;
  o["coordinator_url"] = record->coordinator_url;
  const bool running = answer && answer->from_daemon;
  o["daemon"] = running ? "running" : "stopped";
  if (!running && !o.contains("error")) {
    // Read from the cache in this process: nobody syncs, so there is no round to report.
    o["sync"] = "stopped";
    o["last_error"] = nullptr;
  }
  if (!o.contains("key_protection"))
    o["key_protection"] = record->key_protection == "file" ? "degraded" : record->key_protection;
  return boost::json::serialize(o);
}

}  // namespace lab::agent::daemon
