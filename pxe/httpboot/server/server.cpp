#include "pxe/httpboot/server/server.hpp"

#include "pxe/httpboot/error.hpp"
#include "pxe/httpboot/files.hpp"
#include "pxe/httpboot/progress.hpp"
#include "shared/http/message/file_response.hpp"
#include "shared/http/server/delayed_reply.hpp"
#include "shared/log/log.hpp"
#include "shared/metrics/metrics.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <deque>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace lab::pxe::httpboot {

namespace asio = boost::asio;
namespace http = shared::http;
using events::Event;
using events::Kind;

namespace {

std::string_view content_type_for(std::string_view path) {
  if (path.ends_with(".ipxe"))
    return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

// A Host header fit to build URLs from: host name, IPv4, or [IPv6], with an optional port.
bool plausible_host(std::string_view host) {
  if (host.empty() || host.size() > 260)
    return false;
  for (const char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == ':' || c == '[' || c == ']';
    if (!ok)
      return false;
  }
  return true;
}

constexpr std::string_view kNoRegistryNotice =
    "lab: no machine registry (coordinator disabled): booting without a boot token";
constexpr std::string_view kNoRegistryError =
    "no machine registry (coordinator disabled): cannot issue the boot token this machine's "
    "profile needs";

http::Response script_response(std::string body) {
  http::Response r = http::Response::text(200, std::move(body));
  r.headers.set("Cache-Control", "no-store");  // every script carries a one-time token
  return r;
}

// The client's IPv4 address as DHCP handed it out, also when a dual-stack listener reports it
// IPv4-mapped ("::ffff:10.0.0.5").
std::string client_address(const http::Peer& peer) {
  constexpr std::string_view kMapped = "::ffff:";
  std::string_view a = peer.address;
  if (a.starts_with(kMapped) && a.find('.') != std::string_view::npos)
    a.remove_prefix(kMapped.size());
  return std::string(a);
}

unsigned status_for(const Error& e) {
  if (e == HttpBootError::file_not_found || e == HttpBootError::not_a_file)
    return 404;
  if (e == HttpBootError::outside_root || e == HttpBootError::bad_file_path)
    return 403;
  return 500;
}

}  // namespace

// The server's figures in a metrics registry; the families are null without one.
struct Metrics {
  shared::metrics::Family<shared::metrics::Counter>* requests = nullptr;
  shared::metrics::Counter* bytes = nullptr;
  shared::metrics::Counter* minted = nullptr;
  shared::metrics::Counter* refused = nullptr;
  shared::metrics::Counter* mint_failed = nullptr;

  explicit Metrics(shared::metrics::Registry* r) {
    if (r == nullptr)
      return;
    requests = &r->counter("lab_httpboot_requests_total",
                           "HTTP boot requests answered, by kind (script: a machine's iPXE "
                           "script; file: a boot file; progress: labd boot's steps; other) "
                           "and status.",
                           {"kind", "status"});
    bytes = &r->counter("lab_httpboot_bytes_total",
                        "Response body bytes sent (boot files and "
                        "scripts).")
                 .get();
    auto& tokens = r->counter("lab_httpboot_boot_tokens_total",
                              "Boot tokens by outcome: minted into a script; refused (a script "
                              "request with no lease, from the wrong address, without a "
                              "profile, or rate limited); failed (the registry could not mint).",
                              {"outcome"});
    minted = &tokens.with({"minted"});
    refused = &tokens.with({"refused"});
    mint_failed = &tokens.with({"failed"});
  }
  static void inc(shared::metrics::Counter* c) {
    if (c != nullptr)
      c->inc();
  }
};

class Server::Impl : public std::enable_shared_from_this<Server::Impl> {
 public:
  Impl(asio::io_context& io, asio::thread_pool& blocking, ServerOptions options,
       recorder::Recorder& recorder, registry::Registry* registry, const registry::Leases* leases)
      : io_(io),
        blocking_(blocking),
        options_(std::move(options)),
        recorder_(recorder),
        registry_(registry),
        leases_(leases),
        refusals_(options_.refusals),
        metrics_(options_.metrics),
        tarpit_(io, kMaxTarpitted),
        http_(
            io,
            [this](const http::Request& req, http::Reply reply) { handle(req, std::move(reply)); },
            options_.limits) {}

  Result<std::uint16_t> start() {
    auto files = BootFiles::open(options_.root);
    if (!files)
      return files.error();
    files_.emplace(std::move(*files));
    LAB_TRY_ASSIGN(port_, http_.listen_tcp(options_.address, options_.port));
    if (registry_ == nullptr) {
      log_.warn(
          "no machine registry (coordinator disabled): every machine boots the discovery "
          "profile without a boot token");
    }
    if (options_.profiles.select(nullptr) == nullptr) {
      log_.warn("no boot profile named discovery: unknown machines get 404");
    }
    log_.info("listening", {{"url", url()}, {"root", options_.root.string()}});
    return port_;
  }

  void stop(std::function<void()> stopped) { http_.stop(std::move(stopped)); }

  [[nodiscard]] std::string url() const {
    const bool v6 = options_.address.find(':') != std::string::npos;
    return "http://" + (v6 ? "[" + options_.address + "]" : options_.address) + ":" +
           std::to_string(port_);
  }

 private:
  // The kind of request a path is, for the metrics.
  static std::string_view kind_of(std::string_view path) {
    if (path == kProgressPath)
      return "progress";
    if (path == kGenericScriptPath || parse_script_path(path))
      return "script";
    if (path.starts_with(kBootPrefix))
      return "file";
    return "other";
  }

  // Counts the answer (kind, status, body bytes) as it goes out.
  http::Reply counted(const http::Request& req, http::Reply reply) {
    if (metrics_.requests == nullptr)
      return reply;
    return [m = &metrics_, kind = std::string(kind_of(req.path)), head = req.method == "HEAD",
            reply = std::move(reply)](http::Response r) {
      m->requests->with({kind, std::to_string(r.status)}).inc();
      if (!head)
        m->bytes->inc(r.body.size() + (r.file ? r.file->length : 0));
      reply(std::move(r));
    };
  }

  void handle(const http::Request& req, http::Reply plain_reply) {
    http::Reply reply = counted(req, std::move(plain_reply));
    if (req.method == "POST" && req.path == kProgressPath) {
      handle_progress(req, reply);
      return;
    }
    const bool head = req.method == "HEAD";
    if (req.method != "GET" && !head) {
      http::Response r = http::Response::error(405, "method not allowed");
      r.headers.set("Allow", req.path == kProgressPath ? "POST" : "GET, HEAD");
      reply(std::move(r));
      return;
    }
    const std::string_view path = req.path;
    if (!path.starts_with(kBootPrefix)) {
      reply(http::Response::error(404, "not found"));
      return;
    }
    if (path == kGenericScriptPath) {
      reply(script_response(generic_script(server_base(req))));
      return;
    }
    auto mac = parse_script_path(path);
    if (!mac) {
      serve_file(req, reply);  // iPXE binaries, kernels, initrds
      return;
    }
    if (head) {
      // Each GET mints a token; a HEAD cannot say how long that script would be.
      http::Response r = http::Response::error(405, "method not allowed");
      r.headers.set("Allow", "GET");
      reply(std::move(r));
      return;
    }
    serve_script(req, *mac, std::move(reply));
  }

  std::string server_base(const http::Request& req) const {
    if (auto host = req.header("Host"); host && plausible_host(*host))
      return "http://" + std::string(*host);
    return url();
  }

  void serve_script(const http::Request& req, const std::string& mac, http::Reply reply) {
    std::string client = client_address(req.peer);
    const auto now = std::chrono::steady_clock::now();
    if (const auto wait = refusals_.retry_after(client, now); wait > 0) {
      http::Response r = http::Response::error(429, "too many refused script requests");
      r.headers.set("Retry-After", std::to_string(wait));
      Metrics::inc(metrics_.refused);
      // A second late: a flood from one address runs at one request per connection a second.
      tarpit_.reply_after(std::chrono::seconds(1), std::move(reply), std::move(r));
      return;
    }
    std::optional<registry::Machine> machine;
    if (registry_ != nullptr)
      machine = registry_->find_by_mac(mac);
    const Profile* profile = options_.profiles.select(machine ? &machine->labels : nullptr);
    if (profile == nullptr) {
      refusals_.charge(client, now);
      Metrics::inc(metrics_.refused);
      record({std::chrono::system_clock::now(),
              Kind::script_refused,
              mac,
              client,
              {{"reason", "no boot profile"}}});
      reply(http::Response::error(404, "no boot profile for this machine"));
      return;
    }
    // The address this machine boots from: what this appliance's DHCP leased to the MAC (or an
    // operator registered for it). A boot token exists only for such a MAC, bound to that
    // address, so knowing a MAC is not enough to get one.
    std::optional<std::string> bound;
    if (leases_ != nullptr)
      bound = leases_->address_of(mac);
    if (!bound && registry_ != nullptr)
      bound = registry_->registered_ip(mac);
    // Every script of a registry carries a token (the agent OS joins with it).
    const bool minting = registry_ != nullptr;
    // Without a token at stake the recorder's view will do (machines another DHCP serves).
    const auto expected = bound ? bound : (minting ? std::nullopt : recorder_.last_ip(mac));
    if (minting && !bound) {
      refuse_script(client, mac, now, "no DHCP lease or registration for this MAC", {},
                    "no DHCP lease from this appliance for this MAC");
      reply(http::Response::error(403, "forbidden"));
      return;
    }
    if (expected && *expected != client) {
      refuse_script(client, mac, now, "address does not match DHCP", *expected, {});
      reply(http::Response::error(403, "forbidden"));
      return;
    }
    remember_client(client, mac);
    ScriptContext ctx{
        .mac = mac, .server = server_base(req), .token = {}, .join = {}, .notice = {}};
    std::string node = machine ? machine->node_id : std::string();
    if (!minting) {
      if (registry_ == nullptr)
        ctx.notice = std::string(kNoRegistryNotice);
      finish_script(*profile, std::move(ctx), std::move(node), client, reply);
      return;
    }
    if (pending_mints_.fetch_add(1) >= options_.max_pending_mints) {
      --pending_mints_;
      http::Response r = http::Response::error(503, "busy, retry");
      r.headers.set("Retry-After", "2");
      reply(std::move(r));
      return;
    }
    // Minting writes to the store: off the io thread. The reply goes back from the pool; the
    // server writes it on the connection's strand.
    asio::post(blocking_, [self = shared_from_this(), profile, ctx = std::move(ctx),
                           node = std::move(node), client, ip = *bound,
                           reply = std::move(reply)]() mutable {
      auto token = self->registry_->mint_boot_token(ctx.mac, ip, self->options_.token_ttl);
      --self->pending_mints_;
      asio::post(self->io_, [self, profile, ctx = std::move(ctx), node = std::move(node),
                             client = std::move(client), token = std::move(token),
                             reply = std::move(reply)]() mutable {
        Metrics::inc(token ? self->metrics_.minted : self->metrics_.mint_failed);
        if (!token) {
          self->log_.error("cannot mint boot token",
                           {{"mac", ctx.mac}, {"error", token.error().message()}});
          reply(http::Response::error(500, "cannot issue a boot token"));
          return;
        }
        ctx.token = std::move(token->token);
        ctx.join = std::move(token->join_string);
        self->finish_script(*profile, std::move(ctx), std::move(node), client, reply);
      });
    });
  }

  // A refused script request: logged, recorded on the MAC's timeline, and charged to the
  // caller's address (a stranger walking through MACs is soon answered 429).
  void refuse_script(const std::string& client, const std::string& mac,
                     std::chrono::steady_clock::time_point now, std::string_view reason,
                     const std::string& expected_ip, std::string_view log_reason) {
    refusals_.charge(client, now);
    Metrics::inc(metrics_.refused);
    log_.warn("script refused", {{"mac", mac},
                                 {"client", client},
                                 {"reason", log_reason.empty() ? reason : log_reason},
                                 {"dhcp_ip", expected_ip}});
    Event e{std::chrono::system_clock::now(),
            Kind::script_refused,
            mac,
            client,
            {{"reason", std::string(reason)}}};
    if (!expected_ip.empty())
      e.detail.emplace_back("expected_ip", expected_ip);
    record(std::move(e));
  }

  void finish_script(const Profile& profile, ScriptContext ctx, std::string node,
                     const std::string& client, const http::Reply& reply) {
    auto script = render_script(profile, ctx);
    if (!script && script.error() == HttpBootError::token_required) {
      log_.error("boot profile needs a boot token and there is no machine registry",
                 {{"mac", ctx.mac}, {"profile", profile.spec.name}});
      record({std::chrono::system_clock::now(),
              Kind::script_refused,
              ctx.mac,
              client,
              {{"reason", "no machine registry to issue a boot token"},
               {"profile", profile.spec.name}}});
      reply(http::Response::error(500, std::string(kNoRegistryError)));
      return;
    }
    if (!script) {
      log_.error(
          "cannot render boot script",
          {{"mac", ctx.mac}, {"profile", profile.spec.name}, {"error", script.error().message()}});
      reply(http::Response::error(500, "cannot render boot script"));
      return;
    }
    Event e{std::chrono::system_clock::now(),
            Kind::script_render,
            ctx.mac,
            client,
            {{"profile", profile.spec.name}, {"token", ctx.token.empty() ? "no" : "yes"}}};
    if (!node.empty())
      e.detail.emplace_back("node", std::move(node));
    record(std::move(e));
    reply(script_response(std::move(*script)));
  }

  void serve_file(const http::Request& req, const http::Reply& reply) {
    const std::string_view rel = std::string_view(req.path).substr(kBootPrefix.size());
    auto opened = files_->open_file(rel);
    if (!opened) {
      const unsigned status = status_for(opened.error());
      if (status == 500)
        log_.warn("boot file", {{"path", rel}, {"error", opened.error().message()}});
      // A missing kernel is the step of a failed boot an operator most needs to see.
      record({std::chrono::system_clock::now(),
              Kind::http_fetch,
              {},
              client_address(req.peer),
              {{"file", std::string(rel)},
               {"status", std::to_string(status)},
               {"error", opened.error().message()}}});
      reply(http::Response::error(status, status == 404   ? "not found"
                                          : status == 403 ? "forbidden"
                                                          : "internal error"));
      return;
    }
    const auto size = opened->info.size;
    http::Response r =
        http::file_response(req, std::move(opened->file), opened->info, content_type_for(rel));
    Event e{std::chrono::system_clock::now(),
            Kind::http_fetch,
            {},
            client_address(req.peer),
            {{"file", std::string(rel)}, {"status", std::to_string(r.status)}}};
    if (r.file) {
      e.detail.emplace_back("bytes", std::to_string(r.file->length));
      if (r.status == 206)
        e.detail.emplace_back("of", std::to_string(size));
    }
    if (req.method == "HEAD")
      e.detail.emplace_back("method", "HEAD");
    record(std::move(e));
    reply(std::move(r));
  }

  // `labd boot` reporting a step, before (or without) a node certificate. Only the machine
  // itself may add to its timeline, and only at a bounded rate.
  void handle_progress(const http::Request& req, const http::Reply& reply) {
    auto p = parse_progress(req.body);
    if (!p) {
      reply(http::Response::error(400, p.error().detail()));
      return;
    }
    const std::string client = client_address(req.peer);
    if (!address_belongs(p->mac, client)) {
      log_.warn("progress refused", {{"mac", p->mac}, {"client", client}});
      reply(http::Response::error(403, "forbidden"));
      return;
    }
    {
      const std::lock_guard lock(limiter_mu_);
      if (!limiter_.allow(p->mac, std::chrono::steady_clock::now())) {
        http::Response r = http::Response::error(429, "too many progress reports");
        r.headers.set("Retry-After", "3");
        reply(std::move(r));
        return;
      }
    }
    Event e{
        std::chrono::system_clock::now(), Kind::agent_boot, p->mac, client, {{"stage", p->stage}}};
    if (!p->detail.empty())
      e.detail.emplace_back("detail", std::move(p->detail));
    recorder_.record(std::move(e));
    http::Response r;
    r.status = 204;
    reply(std::move(r));
  }

  // The address this appliance's DHCP leased to this MAC (or the recorder saw it given);
  // when DHCP is not ours (another DHCP server), the address this MAC's boot script was
  // fetched from.
  bool address_belongs(const std::string& mac, const std::string& client) {
    if (leases_ != nullptr) {
      if (auto ip = leases_->address_of(mac))
        return *ip == client;
    }
    if (auto ip = recorder_.last_ip(mac))
      return *ip == client;
    const std::lock_guard lock(clients_mu_);
    auto it = clients_.find(client);
    return it != clients_.end() && it->second == mac;
  }

  // File fetches carry only the client address: DHCP's view first (in the recorder), else the
  // MAC whose script this address fetched.
  void record(Event e) {
    if (e.mac.empty() && !e.ip.empty() && !recorder_.mac_for_ip(e.ip)) {
      std::lock_guard lock(clients_mu_);
      if (auto it = clients_.find(e.ip); it != clients_.end())
        e.mac = it->second;
    }
    recorder_.record(std::move(e));
  }

  void remember_client(const std::string& ip, const std::string& mac) {
    std::lock_guard lock(clients_mu_);
    auto [it, inserted] = clients_.insert_or_assign(ip, mac);
    if (!inserted)
      return;
    clients_order_.push_back(ip);
    while (clients_order_.size() > options_.max_script_clients) {
      clients_.erase(clients_order_.front());
      clients_order_.pop_front();
    }
  }

  asio::io_context& io_;
  asio::thread_pool& blocking_;
  ServerOptions options_;
  recorder::Recorder& recorder_;
  registry::Registry* registry_;
  const registry::Leases* leases_;
  shared::ratelimit::Limiter refusals_;
  Metrics metrics_;
  static constexpr std::size_t kMaxTarpitted = 4096;
  http::DelayedReplies tarpit_;
  shared::log::Logger log_{"httpboot"};
  http::Server http_;
  std::optional<BootFiles> files_;
  std::uint16_t port_ = 0;
  std::atomic<std::size_t> pending_mints_{0};
  std::mutex clients_mu_;
  std::unordered_map<std::string, std::string> clients_;
  std::deque<std::string> clients_order_;
  std::mutex limiter_mu_;
  ProgressLimiter limiter_;
};

Server::Server(asio::io_context& io, asio::thread_pool& blocking, ServerOptions options,
               recorder::Recorder& recorder, registry::Registry* registry,
               const registry::Leases* leases)
    : impl_(std::make_shared<Impl>(io, blocking, std::move(options), recorder, registry, leases)) {}

Server::~Server() = default;

Result<std::uint16_t> Server::start() {
  return impl_->start();
}

void Server::stop(std::function<void()> stopped) {
  impl_->stop(std::move(stopped));
}

std::string Server::url() const {
  return impl_->url();
}

}  // namespace lab::pxe::httpboot
