#include "bootstrap/api/api.hpp"

#include "bootstrap/api/codec.hpp"
#include "bootstrap/api/routes.hpp"
#include "bootstrap/audit/export.hpp"
#include "pxe/recorder/recorder.hpp"
#include "pxe/recorder/render.hpp"
#include "shared/config/config.hpp"
#include "shared/crypto/x509.hpp"
#include "shared/http/server/delayed_reply.hpp"
#include "shared/json/json.hpp"
#include "shared/log/log.hpp"
#include "shared/net/mac.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/serialize.hpp>

#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <utility>

namespace lab::bootstrap::api {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using coordinator::Actor;
using coordinator::AgentIdentity;
using coordinator::Coordinator;
using shared::http::Reply;
using shared::http::Request;
using shared::http::Response;

Response json_response(unsigned status, const json::value& v) {
  return Response::json(status, json::serialize(v));
}

Response error_response(unsigned status, std::string_view message, std::string_view code) {
  return Response::json(status, error_body(message, code));
}

Response no_content() {
  Response r;
  r.status = 204;
  return r;
}

// Authentication failures say nothing about why (API.md).
Response unauthorized() {
  auto r = error_response(401, "authentication required", "unauthorized");
  r.headers.set("WWW-Authenticate", "Bearer");
  return r;
}
Response forbidden() {
  return error_response(403, "forbidden", "forbidden");
}

Response from_error(const Error& e) {
  const ErrorStatus s = status_for(e);
  if (s.status == 403 && s.code == "invalid_token")
    return error_response(403, "invalid token", "invalid_token");
  if (s.show_detail)
    return error_response(s.status, e.detail().empty() ? e.message() : e.detail(), s.code);
  if (s.status == 403)
    return forbidden();
  return error_response(s.status, s.status == 503 ? "store unavailable" : "internal error", s.code);
}

bool is_json(const Request& r) {
  const auto ct = r.header("Content-Type");
  if (!ct)
    return false;
  const auto type = ct->substr(0, ct->find(';'));
  auto trimmed = type;
  while (!trimmed.empty() && trimmed.back() == ' ')
    trimmed.remove_suffix(1);
  return shared::http::iequals(trimmed, "application/json");
}

// The body as a JSON object, or the response refusing it.
Result<json::object> json_body(const Request& r, Response& refusal) {
  if (!is_json(r)) {
    refusal = error_response(415, "expected Content-Type: application/json", "unsupported_media");
    return Error(shared::json::JsonError::wrong_type, "content type");
  }
  auto o = shared::json::parse_object(r.body);
  if (!o) {
    refusal = error_response(400, "invalid JSON body: " + o.error().detail(), "invalid_json");
    return o.error();
  }
  return o;
}

// A non-negative integer query parameter, `fallback` when absent; nullopt when malformed.
std::optional<std::int64_t> int_param(const Request& r, std::string_view name,
                                      std::int64_t fallback) {
  const auto v = r.query_param(name);
  if (!v)
    return fallback;
  std::int64_t out = 0;
  const auto* end = v->data() + v->size();
  const auto [p, ec] = std::from_chars(v->data(), end, out);
  if (ec != std::errc() || p != end || out < 0 || v->empty())
    return std::nullopt;
  return out;
}

// An optional array of strings member; absent or null is empty.
Result<std::vector<std::string>> string_list(const json::object& o, std::string_view key) {
  std::vector<std::string> out;
  const auto* v = o.if_contains(key);
  if (v == nullptr || v->is_null())
    return out;
  if (!v->is_array())
    return Error(shared::json::JsonError::wrong_type,
                 "field '" + std::string(key) + "': expected an array of strings");
  for (const auto& item : v->as_array()) {
    if (!item.is_string())
      return Error(shared::json::JsonError::wrong_type,
                   "field '" + std::string(key) + "': expected an array of strings");
    out.emplace_back(item.as_string());
  }
  return out;
}

Response bad_param(std::string_view name) {
  return error_response(400,
                        "query parameter '" + std::string(name) + "': expected an integer >= 0",
                        "invalid_argument");
}

// Requests by (route, status), for /metrics.
class RequestCounter {
 public:
  void add(std::string_view route, unsigned status) {
    std::lock_guard lock(mu_);
    ++counts_[{std::string(route), status}];
  }
  [[nodiscard]] std::map<std::pair<std::string, unsigned>, std::uint64_t> snapshot() const {
    std::lock_guard lock(mu_);
    return counts_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, unsigned>, std::uint64_t> counts_;
};

}  // namespace

// One parked long-poll: the watch, the timer and the reply, answered exactly once by whichever
// of them comes first. The watch is released on the io thread, never inside its own callback.
// The timer is only touched on the poll's own strand, so several io threads stay safe.
struct Poll {
  explicit Poll(asio::io_context& io, Reply r)
      : strand(asio::make_strand(io)), timer(strand), reply(std::move(r)) {}
  std::mutex mu;
  bool done = false;
  asio::strand<asio::io_context::executor_type> strand;
  asio::steady_timer timer;
  Reply reply;
  std::unique_ptr<Coordinator::Watch> watch;
};

struct Api::State : std::enable_shared_from_this<Api::State> {
  State(asio::io_context& i, asio::thread_pool& b, Coordinator& c, ApiOptions o)
      : io(i),
        blocking(b),
        coordinator(c),
        options(std::move(o)),
        limiter(options.refusals),
        tarpit(i, kMaxTarpitted) {}

  asio::io_context& io;
  asio::thread_pool& blocking;
  Coordinator& coordinator;
  ApiOptions options;
  shared::log::Logger log{"api"};
  RequestCounter counter;
  std::atomic<std::size_t> parked{0};
  std::atomic<std::uint64_t> long_polls_answered{0};
  std::atomic<std::uint64_t> long_polls_timed_out{0};
  std::atomic<std::uint64_t> long_polls_revoked{0};
  std::atomic<std::uint64_t> long_polls_hung_up{0};
  std::atomic<bool> stopping{false};
  shared::ratelimit::Limiter limiter;
  // Answers to addresses past their refusal budget go out a second late: a flood from one
  // address then runs at one request per connection per second.
  static constexpr std::size_t kMaxTarpitted = 10000;
  shared::http::DelayedReplies tarpit;
  std::atomic<std::uint64_t> rate_limited{0};
  std::mutex polls_mu;
  std::set<std::shared_ptr<Poll>> polls;

  // Runs `work` on the blocking pool and replies with what it returns; Reply posts back to the
  // connection's strand itself.
  template <class F>
  void blocking_call(Reply reply, F work) {
    asio::post(blocking, [self = shared_from_this(), reply = std::move(reply),
                          work = std::move(work)]() mutable {
      Response r;
      try {
        r = work(self->coordinator);
      } catch (const std::exception& e) {
        self->log.error("request failed", {{"error", e.what()}});
        r = error_response(500, "internal error", "internal");
      }
      reply(std::move(r));
    });
  }

  // Authenticates an agent from its client certificate; on the blocking pool.
  Result<AgentIdentity> identify(const Request& req, Response& refusal) {
    if (!req.peer.client_cert) {
      refusal = unauthorized();
      return Error(coordinator::CoordinatorError::certificate_invalid, "no client certificate");
    }
    const auto& cert = *req.peer.client_cert;
    if (!cert.verified) {
      refusal = forbidden();
      return Error(coordinator::CoordinatorError::certificate_invalid, "not issued by our CA");
    }
    // The listener verifies client certificates against this coordinator's CA.
    auto id = coordinator.identify_verified_agent({cert.serial, cert.common_name, cert.not_after});
    if (!id) {
      log.info("agent refused", {{"peer", req.peer.address}, {"reason", id.error().message()}});
      refusal = forbidden();
    }
    return id;
  }

  void finish(const std::shared_ptr<Poll>& p, Response r) {
    Reply reply;
    {
      std::lock_guard lock(p->mu);
      if (p->done)
        return;
      p->done = true;
      reply = std::move(p->reply);
    }
    parked.fetch_sub(1);
    reply(std::move(r));
    asio::post(p->strand, [self = shared_from_this(), p] {
      p->timer.cancel();
      std::unique_ptr<Coordinator::Watch> w;
      {
        std::lock_guard lock(p->mu);
        w = std::move(p->watch);
      }
      w.reset();
      std::lock_guard lock(self->polls_mu);
      self->polls.erase(p);
    });
  }

  void bundle(Request req, Reply reply);

  // An agent's report on a machine that booted from this appliance, for its boot timeline.
  // A report that repeats the timeline's last one (labd boot's, then labd run's) is left out.
  void record_report(Coordinator& c, const AgentIdentity& agent, std::string_view reported,
                     const std::string& address) {
    if (options.boot_events == nullptr || options.recorder == nullptr)
      return;
    auto node = c.get_node(agent.node_id);
    if (!node)
      return;
    for (const auto& mac : node->macs) {
      const auto timeline = options.recorder->timeline(mac);
      if (timeline.empty())
        continue;
      std::vector<std::pair<std::string, std::string>> detail{{"stage", "report"},
                                                              {"reported", std::string(reported)},
                                                              {"state", node->state},
                                                              {"node", node->id}};
      const auto& last = timeline.back();
      if (last.kind == pxe::events::Kind::agent_boot && last.detail == detail)
        continue;
      options.boot_events->record({std::chrono::system_clock::now(), pxe::events::Kind::agent_boot,
                                   mac, address, std::move(detail)});
    }
  }
};

namespace {

Response bundle_response(const Coordinator::SignedBundle& b) {
  Response r;
  r.status = 200;
  r.headers.set("Content-Type", "application/octet-stream");
  r.headers.set("Lab-Revision", std::to_string(b.revision));
  r.headers.set("Cache-Control", "no-store");
  if (b.envelope)
    r.body = *b.envelope;
  return r;
}

// Every answer to a poll says how new the fleet envelope and this node's kept envelopes are,
// so the agent fetches them only when they moved.
Response with_peer_revisions(Response r, Coordinator& c, const std::string& node_id) {
  r.headers.set("Lab-Fleet-Revision", std::to_string(c.fleet().revision));
  r.headers.set("Lab-Kept-Revision", std::to_string(c.kept_revision(node_id)));
  return r;
}

}  // namespace

void Api::State::bundle(Request req, Reply reply) {
  const auto since = int_param(req, "since", 0);
  if (!since) {
    reply(bad_param("since"));
    return;
  }
  const auto wait = int_param(req, "wait", options.max_wait.count());
  if (!wait) {
    reply(bad_param("wait"));
    return;
  }
  // kept=REV: the agent keeps envelopes of other nodes and holds them up to REV; the poll
  // also ends when one of them has a newer one.
  std::optional<std::int64_t> kept_since;
  if (req.query_param("kept")) {
    kept_since = int_param(req, "kept", 0);
    if (!kept_since) {
      reply(bad_param("kept"));
      return;
    }
  }
  const auto wait_for =
      std::chrono::seconds(std::min<std::int64_t>(*wait, options.max_wait.count()));
  asio::post(blocking, [self = shared_from_this(), req = std::move(req), reply = std::move(reply),
                        since = *since, kept_since, wait_for]() mutable {
    Response refusal;
    auto agent = self->identify(req, refusal);
    if (!agent) {
      reply(std::move(refusal));
      return;
    }
    if (self->stopping.load()) {
      reply(no_content());
      return;
    }
    if (self->parked.load() >= self->options.max_parked) {
      reply(error_response(503, "too many parked requests", "overloaded"));
      return;
    }
    auto p = std::make_shared<Poll>(self->io, std::move(reply));
    self->parked.fetch_add(1);
    {
      std::lock_guard lock(self->polls_mu);
      self->polls.insert(p);
    }
    std::weak_ptr<Poll> weak = p;
    // A client gone before the change must not hold its slot until the wait ends.
    if (req.on_hangup) {
      req.on_hangup([self, weak] {
        if (auto poll = weak.lock()) {
          self->long_polls_hung_up.fetch_add(1);
          self->finish(poll, no_content());
        }
      });
    }
    auto w = self->coordinator.watch(
        agent->node_id, since, kept_since,
        [self, weak, node_id = agent->node_id](const Coordinator::SignedBundle& b) {
          auto poll = weak.lock();
          if (!poll)
            return;
          if (b.revoked) {
            // Revoked while parked: refused now, as every later request will be.
            self->long_polls_revoked.fetch_add(1);
            self->finish(poll, forbidden());
            return;
          }
          self->long_polls_answered.fetch_add(1);
          self->finish(poll, with_peer_revisions(b.kept_changed ? no_content() : bundle_response(b),
                                                 self->coordinator, node_id));
        });
    {
      std::lock_guard lock(p->mu);
      if (!p->done)
        p->watch = std::move(w);
    }
    w.reset();  // answered during watch(): release it here, outside its callback
    // The timer belongs to the poll's strand; armed there.
    asio::post(p->strand, [self, p, wait_for, node_id = agent->node_id] {
      {
        std::lock_guard lock(p->mu);
        if (p->done)
          return;
      }
      p->timer.expires_after(wait_for);
      p->timer.async_wait([self, p, node_id](const boost::system::error_code& ec) {
        if (ec)
          return;
        self->long_polls_timed_out.fetch_add(1);
        self->finish(p, with_peer_revisions(no_content(), self->coordinator, node_id));
      });
    });
  });
}

Api::Api(asio::io_context& io, asio::thread_pool& blocking, Coordinator& coordinator,
         ApiOptions options)
    : state_(std::make_shared<State>(io, blocking, coordinator, std::move(options))) {}

Api::~Api() {
  stop();
}

void Api::stop() {
  state_->stopping.store(true);
  std::set<std::shared_ptr<Poll>> polls;
  {
    std::lock_guard lock(state_->polls_mu);
    polls = state_->polls;
  }
  for (const auto& p : polls) {
    Response r = no_content();
    r.close = true;
    state_->finish(p, std::move(r));
  }
}

std::size_t Api::parked() const {
  return state_->parked.load();
}

namespace {

// Resident memory and the C heap's split between live and free-but-kept bytes: what an operator
// needs to tell parked connections from allocator slack.
std::string process_memory_metrics() {
  std::string out;
  long resident_pages = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "re")) {
    long size_pages = 0;
    if (std::fscanf(f, "%ld %ld", &size_pages, &resident_pages) != 2)
      resident_pages = 0;
    (void)std::fclose(f);  // read-only: nothing to lose
  }
  const auto page = static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
  const struct mallinfo2 m = mallinfo2();
  out +=
      "# HELP lab_process_resident_bytes Resident memory of the lab process.\n"
      "# TYPE lab_process_resident_bytes gauge\n"
      "lab_process_resident_bytes " +
      std::to_string(static_cast<std::uint64_t>(resident_pages) * page) +
      "\n"
      "# HELP lab_process_heap_bytes C heap bytes by state (in_use: allocated; free: kept by the "
      "allocator for reuse).\n"
      "# TYPE lab_process_heap_bytes gauge\n"
      "lab_process_heap_bytes{state=\"in_use\"} " +
      std::to_string(m.uordblks + m.hblkhd) +
      "\n"
      "lab_process_heap_bytes{state=\"free\"} " +
      std::to_string(m.fordblks) + "\n";
  return out;
}

}  // namespace

std::string Api::metrics_text() const {
  std::string out;
  out +=
      "# HELP lab_api_requests_total HTTP requests answered, by route and status.\n"
      "# TYPE lab_api_requests_total counter\n";
  for (const auto& [key, n] : state_->counter.snapshot()) {
    out += "lab_api_requests_total{route=\"" + key.first + "\",status=\"" +
           std::to_string(key.second) + "\"} " + std::to_string(n) + "\n";
  }
  out +=
      "# HELP lab_api_long_polls_parked Bundle long-polls waiting for a change.\n"
      "# TYPE lab_api_long_polls_parked gauge\n"
      "lab_api_long_polls_parked " +
      std::to_string(state_->parked.load()) +
      "\n"
      "# HELP lab_api_long_polls_total Parked long-polls by outcome.\n"
      "# TYPE lab_api_long_polls_total counter\n"
      "lab_api_long_polls_total{outcome=\"changed\"} " +
      std::to_string(state_->long_polls_answered.load()) +
      "\n"
      "lab_api_long_polls_total{outcome=\"timeout\"} " +
      std::to_string(state_->long_polls_timed_out.load()) +
      "\n"
      "lab_api_long_polls_total{outcome=\"revoked\"} " +
      std::to_string(state_->long_polls_revoked.load()) +
      "\n"
      "lab_api_long_polls_total{outcome=\"hangup\"} " +
      std::to_string(state_->long_polls_hung_up.load()) +
      "\n"
      "# HELP lab_api_rate_limited_total Unauthenticated requests answered 429 because their "
      "address had too many refused.\n"
      "# TYPE lab_api_rate_limited_total counter\n"
      "lab_api_rate_limited_total " +
      std::to_string(state_->rate_limited.load()) +
      "\n"
      "# HELP lab_coordinator_revision The coordinator's current revision.\n"
      "# TYPE lab_coordinator_revision gauge\n"
      "lab_coordinator_revision " +
      std::to_string(state_->coordinator.revision()) + "\n";
  if (state_->options.server_stats) {
    const auto s = state_->options.server_stats();
    out +=
        "# HELP lab_api_connections_open Open HTTP connections.\n"
        "# TYPE lab_api_connections_open gauge\n"
        "lab_api_connections_open " +
        std::to_string(s.connections_open) +
        "\n"
        "# HELP lab_api_connections_total Accepted HTTP connections.\n"
        "# TYPE lab_api_connections_total counter\n"
        "lab_api_connections_total " +
        std::to_string(s.connections_total) +
        "\n"
        "# HELP lab_api_rejected_total Requests refused by the HTTP layer (limits, syntax).\n"
        "# TYPE lab_api_rejected_total counter\n"
        "lab_api_rejected_total " +
        std::to_string(s.rejected_total) + "\n";
  }
  out += process_memory_metrics();
  return out;
}

void Api::handle(Request req, Reply reply) {
  auto st = state_;
  const RouteMatch m = match_route(req.method, req.path);
  const std::string route_name(m.route ? m.route->pattern : "unmatched");
  Reply counted = [st, route_name, reply = std::move(reply)](Response r) {
    st->counter.add(route_name, r.status);
    reply(std::move(r));
  };
  if (!m.route) {
    if (m.path_known) {
      Response r = error_response(405, "method not allowed", "method_not_allowed");
      r.headers.set("Allow", m.allowed);
      counted(std::move(r));
    } else {
      counted(error_response(404, "no such route", "not_found"));
    }
    return;
  }

  const auto& params = m.params;
  const RouteId id = m.route->id;

  // Agent routes authenticate by client certificate (on the blocking pool: identify_agent may
  // read the store); /v1/join by its token; everything else by the operator's bearer token.
  switch (id) {
    case RouteId::join:
    case RouteId::renew_with_proof: {
      // Anyone can reach these: a caller that keeps getting refused is told to come back
      // later before its request costs a CSR check, a lock or a store read.
      const std::string address = req.peer.address;
      if (const auto wait = st->limiter.retry_after(address, std::chrono::steady_clock::now());
          wait > 0) {
        st->rate_limited.fetch_add(1);
        Response r =
            error_response(429, "too many refused requests from this address", "rate_limited");
        r.headers.set("Retry-After", std::to_string(wait));
        counted(std::move(r));
        return;
      }
      Reply charged = [st, address, counted = std::move(counted)](Response r) {
        if (r.status >= 400 && r.status != 503)
          st->limiter.charge(address, std::chrono::steady_clock::now());
        counted(std::move(r));
      };
      Response refusal;
      auto body = json_body(req, refusal);
      if (!body) {
        charged(std::move(refusal));
        return;
      }
      if (id == RouteId::renew_with_proof) {
        auto rr = shared::protocol::renew_request_from_json(*body);
        if (!rr) {
          charged(error_response(400, rr.error().detail(), "invalid_argument"));
          return;
        }
        st->blocking_call(std::move(charged), [st, rr = std::move(*rr), address](Coordinator& c) {
          auto r = c.renew_with_proof(rr, Actor{"anonymous", address});
          if (!r) {
            st->log.warn("renewal refused", {{"peer", address}, {"reason", r.error().message()}});
            return from_error(r.error());
          }
          return json_response(200, json::object{{"certificate", r->certificate_pem}});
        });
        return;
      }
      auto jr = shared::protocol::join_request_from_json(*body);
      if (!jr) {
        charged(error_response(400, jr.error().detail(), "invalid_argument"));
        return;
      }
      if (auto csr = shared::crypto::verify_csr(jr->csr_pem); !csr) {
        charged(error_response(400, "field 'csr': not a valid P-256 certificate request",
                               "invalid_csr"));
        return;
      }
      st->blocking_call(std::move(charged), [st, jr = std::move(*jr), address](Coordinator& c) {
        auto r = c.join(jr, Actor{"anonymous", address});
        if (!r) {
          st->log.warn("join refused", {{"peer", address}, {"reason", r.error().message()}});
          return from_error(r.error());
        }
        st->log.info("joined", {{"peer", address}, {"node", r->node_id}});
        return json_response(200, shared::protocol::to_json(*r));
      });
      return;
    }
    case RouteId::agent_bundle:
      st->bundle(std::move(req), std::move(counted));
      return;
    case RouteId::agent_kept:
    case RouteId::agent_fleet: {
      const auto since = int_param(req, "since", 0);
      if (!since) {
        counted(bad_param("since"));
        return;
      }
      st->blocking_call(
          std::move(counted), [st, id, since = *since, req = std::move(req)](Coordinator& c) {
            Response denied;
            auto agent = st->identify(req, denied);
            if (!agent)
              return denied;
            if (id == RouteId::agent_kept)
              return json_response(200, shared::protocol::to_json(c.kept(*agent, since)));
            auto fleet = c.fleet();
            if (!fleet.envelope || fleet.revision <= since)
              return no_content();
            return bundle_response(fleet);
          });
      return;
    }
    case RouteId::agent_renew:
    case RouteId::agent_report: {
      Response refusal;
      auto body = json_body(req, refusal);
      if (!body) {
        counted(std::move(refusal));
        return;
      }
      st->blocking_call(std::move(counted), [st, id, req = std::move(req),
                                             body = std::move(*body)](Coordinator& c) {
        Response denied;
        auto agent = st->identify(req, denied);
        if (!agent)
          return denied;
        if (id == RouteId::agent_renew) {
          auto csr = shared::json::get_string(body, "csr");
          if (!csr)
            return error_response(400, csr.error().detail(), "invalid_argument");
          if (!shared::crypto::verify_csr(*csr))
            return error_response(400, "field 'csr': not a valid P-256 certificate request",
                                  "invalid_csr");
          auto r = c.renew(*agent, shared::protocol::RenewRequest{*csr, std::nullopt});
          if (!r)
            return from_error(r.error());
          return json_response(200, json::object{{"certificate", r->certificate_pem}});
        }
        auto state = shared::json::get_string(body, "state");
        if (!state)
          return error_response(400, state.error().detail(), "invalid_argument");
        json::object facts;
        if (const auto* f = body.if_contains("facts"); f != nullptr && !f->is_null()) {
          if (!f->is_object())
            return error_response(400, "field 'facts': expected an object", "invalid_argument");
          facts = f->get_object();
        }
        if (auto r = c.report(*agent, *state, facts); !r) {
          Response refused = from_error(r.error());
          if (r.error() == coordinator::CoordinatorError::rate_limited) {
            refused.headers.set("Retry-After", std::to_string(std::max<std::int64_t>(
                                                   1, st->options.report_retry_after.count())));
          }
          return refused;
        }
        st->record_report(c, *agent, *state, req.peer.address);
        return no_content();
      });
      return;
    }
    default:
      break;
  }

  // Operator routes.
  const auto auth = req.header("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (!auth || auth->size() <= kBearer.size() ||
      !shared::http::iequals(auth->substr(0, kBearer.size()), kBearer)) {
    counted(unauthorized());
    return;
  }
  auto who = st->coordinator.authenticate_operator(auth->substr(kBearer.size()));
  if (!who) {
    st->log.info("operator credential refused",
                 {{"peer", req.peer.address}, {"reason", who.error().detail()}});
    Response r = error_response(401, who.error().detail(), "unauthorized");
    r.headers.set("WWW-Authenticate", "Bearer");
    counted(std::move(r));
    return;
  }
  const Actor op{*who, req.peer.address};

  if (id == RouteId::metrics) {
    Response r = Response::text(200, st->options.metrics ? st->options.metrics() : metrics_text());
    r.headers.set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    counted(std::move(r));
    return;
  }
  if (id == RouteId::machine_timeline) {
    if (st->options.recorder == nullptr) {
      counted(error_response(404, "this appliance runs no boot flight recorder", "not_found"));
      return;
    }
    const auto mac = shared::net::normalize_mac(params[0]);
    if (!mac) {
      counted(error_response(400, "path: not a MAC address", "invalid_argument"));
      return;
    }
    // The recorder answers from memory under a short mutex: no need for the blocking pool.
    auto events = st->options.recorder->timeline(*mac);
    if (events.empty()) {
      counted(error_response(404, "no boot recorded for " + *mac, "not_found"));
      return;
    }
    counted(Response::json(200, pxe::recorder::timeline_json(*mac, events)));
    return;
  }

  // Routes with a JSON body decode it here, on the strand: a refusal costs no pool time.
  json::object body;
  if (id == RouteId::tokens_create || id == RouteId::node_labels || id == RouteId::group_put ||
      id == RouteId::check_put || id == RouteId::secret_grant || id == RouteId::node_macs ||
      id == RouteId::machine_put || id == RouteId::operator_add) {
    Response refusal;
    auto b = json_body(req, refusal);
    if (!b) {
      counted(std::move(refusal));
      return;
    }
    body = std::move(*b);
  }
  auto invalid = [&](const Error& e) {
    counted(error_response(400, e.detail(), "invalid_argument"));
  };

  switch (id) {
    case RouteId::tokens_create: {
      auto spec = token_spec_from_json(body);
      if (!spec) {
        invalid(spec.error());
        return;
      }
      st->blocking_call(std::move(counted), [spec = std::move(*spec), op](Coordinator& c) {
        auto r = c.create_token(spec, op);
        return r ? json_response(201, to_json(*r)) : from_error(r.error());
      });
      return;
    }
    case RouteId::tokens_list:
      st->blocking_call(std::move(counted), [](Coordinator& c) {
        auto r = c.list_tokens();
        return r ? json_response(200, to_json_array(*r)) : from_error(r.error());
      });
      return;
    case RouteId::token_delete:
      st->blocking_call(std::move(counted), [tid = params[0], op](Coordinator& c) {
        auto r = c.revoke_token(tid, op);
        return r ? no_content() : from_error(r.error());
      });
      return;
    case RouteId::nodes_list:
      st->blocking_call(
          std::move(counted),
          [sel = std::string(req.query_param("selector").value_or(""))](Coordinator& c) {
            auto r = c.list_nodes(sel);
            return r ? json_response(200, to_json_array(*r)) : from_error(r.error());
          });
      return;
    case RouteId::node_get:
      st->blocking_call(std::move(counted), [nid = params[0]](Coordinator& c) {
        auto r = c.get_node(nid);
        return r ? json_response(200, to_json(*r)) : from_error(r.error());
      });
      return;
    case RouteId::node_labels: {
      auto patch = label_patch_from_json(body);
      if (!patch) {
        invalid(patch.error());
        return;
      }
      st->blocking_call(
          std::move(counted), [nid = params[0], patch = std::move(*patch), op](Coordinator& c) {
            auto r = c.label_node(
                nid, patch.set, patch.remove, op,
                patch.overwrite ? Coordinator::Overwrite::yes : Coordinator::Overwrite::no);
            return r ? json_response(200, to_json(*r)) : from_error(r.error());
          });
      return;
    }
    case RouteId::node_revoke:
      st->blocking_call(std::move(counted), [nid = params[0], op](Coordinator& c) {
        auto r = c.revoke_node(nid, op);
        return r ? no_content() : from_error(r.error());
      });
      return;
    case RouteId::node_delete:
      st->blocking_call(std::move(counted), [nid = params[0], op](Coordinator& c) {
        auto r = c.delete_node(nid, op);
        return r ? no_content() : from_error(r.error());
      });
      return;
    case RouteId::node_accept:
      st->blocking_call(std::move(counted), [nid = params[0], op](Coordinator& c) {
        auto r = c.accept_node(nid, op);
        return r ? json_response(200, to_json(*r)) : from_error(r.error());
      });
      return;
    case RouteId::node_reinstall:
      st->blocking_call(std::move(counted), [nid = params[0], op](Coordinator& c) {
        auto r = c.reinstall_node(nid, op);
        return r ? json_response(200, to_json(*r)) : from_error(r.error());
      });
      return;
    case RouteId::node_macs: {
      auto add = string_list(body, "add");
      auto remove = string_list(body, "remove");
      if (!add || !remove) {
        invalid(!add ? add.error() : remove.error());
        return;
      }
      st->blocking_call(std::move(counted), [nid = params[0], add = std::move(*add),
                                             remove = std::move(*remove), op](Coordinator& c) {
        auto r = c.set_node_macs(nid, add, remove, op);
        return r ? json_response(200, to_json(*r)) : from_error(r.error());
      });
      return;
    }
    case RouteId::machines_list:
      st->blocking_call(std::move(counted), [](Coordinator& c) {
        auto r = c.list_machines();
        return r ? json_response(200, to_json_array(*r)) : from_error(r.error());
      });
      return;
    case RouteId::machine_put: {
      auto ip = shared::json::get_string(body, "ip");
      auto description = shared::json::optional_string(body, "description");
      if (!ip || !description) {
        invalid(!ip ? ip.error() : description.error());
        return;
      }
      st->blocking_call(std::move(counted),
                        [mac = params[0], ip = std::move(*ip),
                         description = description->value_or(""), op](Coordinator& c) {
                          auto r = c.register_machine(mac, ip, description, op);
                          return r ? json_response(200, to_json(*r)) : from_error(r.error());
                        });
      return;
    }
    case RouteId::machine_delete:
      st->blocking_call(std::move(counted), [mac = params[0], op](Coordinator& c) {
        auto r = c.unregister_machine(mac, op);
        return r ? no_content() : from_error(r.error());
      });
      return;
    case RouteId::operators_list:
      st->blocking_call(std::move(counted), [](Coordinator& c) {
        auto r = c.list_operators();
        return r ? json_response(200, to_json_array(*r)) : from_error(r.error());
      });
      return;
    case RouteId::operator_add: {
      auto name = shared::json::get_string(body, "name");
      auto ttl = shared::json::optional_string(body, "ttl");
      if (!name || !ttl) {
        invalid(!name ? name.error() : ttl.error());
        return;
      }
      std::chrono::seconds lifetime{0};
      if (*ttl && !(*ttl)->empty()) {
        auto d = shared::config::parse_duration(**ttl);
        if (!d) {
          counted(error_response(400, "field 'ttl': expected a duration like \"30d\" or \"12h\"",
                                 "invalid_argument"));
          return;
        }
        lifetime = *d;
      }
      st->blocking_call(std::move(counted),
                        [name = std::move(*name), lifetime, op](Coordinator& c) {
                          auto r = c.add_operator(name, lifetime, op);
                          return r ? json_response(201, to_json(*r)) : from_error(r.error());
                        });
      return;
    }
    case RouteId::operator_revoke:
      st->blocking_call(std::move(counted), [name = params[0], op](Coordinator& c) {
        auto r = c.revoke_operator(name, op);
        return r ? no_content() : from_error(r.error());
      });
      return;
    case RouteId::groups_list:
      st->blocking_call(std::move(counted), [](Coordinator& c) {
        auto r = c.list_groups();
        return r ? json_response(200, to_json_array(*r)) : from_error(r.error());
      });
      return;
    case RouteId::group_put: {
      auto g = group_from_json(params[0], body);
      if (!g) {
        invalid(g.error());
        return;
      }
      st->blocking_call(std::move(counted), [g = std::move(*g), op](Coordinator& c) {
        auto r = c.set_group(g, op);
        return r ? json_response(200, to_json(*r)) : from_error(r.error());
      });
      return;
    }
    case RouteId::group_delete:
      st->blocking_call(std::move(counted), [name = params[0], op](Coordinator& c) {
        auto r = c.delete_group(name, op);
        return r ? no_content() : from_error(r.error());
      });
      return;
    case RouteId::group_members:
      st->blocking_call(std::move(counted), [name = params[0]](Coordinator& c) {
        auto r = c.group_members(name);
        return r ? json_response(200, to_json_array(*r)) : from_error(r.error());
      });
      return;
    case RouteId::checks_list:
      st->blocking_call(std::move(counted), [](Coordinator& c) {
        auto r = c.list_checks();
        return r ? json_response(200, to_json_array(*r)) : from_error(r.error());
      });
      return;
    case RouteId::check_put: {
      auto check = check_from_json(params[0], body);
      if (!check) {
        invalid(check.error());
        return;
      }
      st->blocking_call(std::move(counted), [check = std::move(*check), op](Coordinator& c) {
        auto r = c.set_check(check, op);
        return r ? json_response(200, to_json(*r)) : from_error(r.error());
      });
      return;
    }
    case RouteId::check_delete:
      st->blocking_call(std::move(counted), [name = params[0], op](Coordinator& c) {
        auto r = c.delete_check(name, op);
        return r ? no_content() : from_error(r.error());
      });
      return;
    case RouteId::secrets_list:
      st->blocking_call(std::move(counted), [](Coordinator& c) {
        auto r = c.list_secrets();
        return r ? json_response(200, to_json_array(*r)) : from_error(r.error());
      });
      return;
    case RouteId::secret_put: {
      if (req.body.empty()) {
        counted(error_response(400, "the body (the secret's value) is empty", "invalid_argument"));
        return;
      }
      std::optional<std::string> entitlement;
      if (auto e = req.query_param("entitlement"))
        entitlement = std::string(*e);
      std::optional<std::string> require;
      if (auto q = req.query_param("require"))
        require = std::string(*q);
      st->blocking_call(std::move(counted), [name = params[0], value = std::move(req.body),
                                             entitlement, require, op](Coordinator& c) {
        auto r = c.set_secret(name, value, entitlement, op, require);
        return r ? json_response(200, to_json(*r)) : from_error(r.error());
      });
      return;
    }
    case RouteId::secret_grant: {
      auto e = shared::json::get_string(body, "entitlement");
      if (!e) {
        invalid(e.error());
        return;
      }
      st->blocking_call(std::move(counted),
                        [name = params[0], e = std::move(*e), op](Coordinator& c) {
                          auto r = c.grant_secret(name, e, op);
                          return r ? json_response(200, to_json(*r)) : from_error(r.error());
                        });
      return;
    }
    case RouteId::secret_delete:
      st->blocking_call(std::move(counted), [name = params[0], op](Coordinator& c) {
        auto r = c.delete_secret(name, op);
        return r ? no_content() : from_error(r.error());
      });
      return;
    case RouteId::audit_list: {
      const auto after = int_param(req, "after", 0);
      const auto limit = int_param(req, "limit", 100);
      if (!after || !limit) {
        counted(bad_param(!after ? "after" : "limit"));
        return;
      }
      const auto n = static_cast<std::size_t>(std::clamp<std::int64_t>(*limit, 1, 1000));
      st->blocking_call(std::move(counted), [after = *after, n](Coordinator& c) {
        auto r = c.audit_events(after, n);
        return r ? json_response(200, to_json_array(*r)) : from_error(r.error());
      });
      return;
    }
    case RouteId::audit_verify:
      st->blocking_call(std::move(counted), [](Coordinator& c) {
        auto r = c.verify_audit();
        return r ? json_response(200, to_json(*r)) : from_error(r.error());
      });
      return;
    case RouteId::audit_head:
      st->blocking_call(std::move(counted), [](Coordinator& c) {
        auto r = c.audit_head();
        return r ? json_response(200, audit::to_json({*r, c.bundle_public_key()}))
                 : from_error(r.error());
      });
      return;
    default:
      counted(error_response(404, "no such route", "not_found"));
      return;
  }
}

}  // namespace lab::bootstrap::api
