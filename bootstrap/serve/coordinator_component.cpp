// `lab serve`'s coordinator component: opens the coordinator, serves its API over HTTPS with
// the coordinator CA's server certificate, and publishes its URL in the data directory.
#include "bootstrap/serve/coordinator_component.hpp"

#include "bootstrap/api/api.hpp"
#include "bootstrap/coordinator/coordinator.hpp"
#include "bootstrap/serve/config_values.hpp"
#include "bootstrap/serve/services.hpp"
#include "shared/http/server/server.hpp"
#include "shared/log/log.hpp"
#include "shared/metrics/metrics.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

namespace lab::bootstrap::serve {
namespace {

using shared::log::Logger;

// The coordinator puts its URL into every join string, so the port must be known before it
// opens; port 0 (tests) is resolved to a free port up front.
Result<std::uint16_t> free_port(const std::string& host) {
  const bool v6 = host.find(':') != std::string::npos;
  const int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return errno_error("socket");
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    ::inet_pton(AF_INET6, host.c_str(), &a->sin6_addr);
    len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    if (::inet_pton(AF_INET, host.c_str(), &a->sin_addr) != 1) {
      ::close(fd);
      return Error(shared::config::ConfigError::invalid_value,
                   "coordinator.listen: not an IP address: " + host);
    }
    len = sizeof(sockaddr_in);
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    auto e = errno_error("bind " + host + ":0");
    ::close(fd);
    return e;
  }
  ::close(fd);
  return ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                  : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

std::string url_host(const std::string& host) {
  if (host == "0.0.0.0" || host == "::" || host.empty()) {
    std::array<char, 256> name{};
    if (::gethostname(name.data(), name.size() - 1) == 0 && name[0] != '\0')
      return name.data();
    return "127.0.0.1";
  }
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

Result<void> write_file_atomic(const std::filesystem::path& path, const std::string& text) {
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.flush();
    if (!out)
      return errno_error("write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec)
    return Error(ec, "rename " + tmp);
  return {};
}

// Everything a remote party can make the API hold, from configuration.
struct ApiLimits {
  shared::http::Limits http;
  std::chrono::seconds max_wait{55};
  std::size_t max_parked = 50000;
  shared::ratelimit::LimiterOptions refusals;
  std::chrono::seconds report_retry_after{10};
};

class CoordinatorComponent final : public Component {
 public:
  CoordinatorComponent(Runtime& runtime, std::unique_ptr<coordinator::Coordinator> c,
                       ListenAddress listen, const ApiLimits& limits,
                       const pxe::recorder::Recorder* recorder, pxe::events::Sink* boot_events)
      : runtime_(runtime),
        coordinator_(std::move(c)),
        listen_(std::move(listen)),
        housekeeping_(runtime.io) {
    api::ApiOptions options;
    options.max_wait = limits.max_wait;
    options.max_parked = limits.max_parked;
    options.refusals = limits.refusals;
    options.report_retry_after = limits.report_retry_after;
    options.recorder = recorder;
    options.boot_events = boot_events;
    options.server_stats = [this] { return server_->stats(); };
    // GET /metrics on the API answers with every component's figures, not only its own.
    options.metrics = [&registry = runtime_.metrics] { return registry.render(); };
    api_ = std::make_unique<api::Api>(runtime_.io, runtime_.blocking, *coordinator_, options);
    runtime_.metrics.text([api = api_.get()] { return api->metrics_text(); });
    server_ = std::make_unique<shared::http::Server>(
        runtime_.io,
        [api = api_.get()](shared::http::Request req, shared::http::Reply reply) {
          api->handle(std::move(req), std::move(reply));
        },
        limits.http);
  }

  [[nodiscard]] std::string_view name() const override { return "coordinator"; }

  Result<void> start() override {
    shared::http::TlsConfig tls{coordinator_->server_chain_pem(), coordinator_->server_key_pem(),
                                coordinator_->ca_pem()};
    LAB_TRY_ASSIGN(const std::uint16_t port,
                   server_->listen_tcp(listen_.host, listen_.port, std::move(tls)));
    // The CLI on this machine reaches a wildcard listener through loopback.
    const bool wildcard = listen_.host == "0.0.0.0" || listen_.host == "::";
    const std::string url = "https://" +
                            (wildcard ? std::string("127.0.0.1") : url_host(listen_.host)) + ":" +
                            std::to_string(port);
    LAB_TRY(write_file_atomic(runtime_.data_dir / "coordinator.url", url + "\n"));
    log_.info("listening", {{"url", url}, {"port", port}});
    schedule_housekeeping();
    return {};
  }

  void stop(std::function<void()> stopped) override {
    stopping_ = true;
    housekeeping_.cancel();
    api_->stop();
    server_->stop(std::move(stopped));
  }

 private:
  Runtime& runtime_;
  Logger log_{"coordinator"};
  std::unique_ptr<coordinator::Coordinator> coordinator_;
  ListenAddress listen_;
  std::unique_ptr<api::Api> api_;
  std::unique_ptr<shared::http::Server> server_;
  boost::asio::steady_timer housekeeping_;
  bool stopping_ = false;
  bool maintaining_ = false;  // io thread only

  // Once a second, on the blocking pool (it writes to the store): refusal audit rows, expired
  // tokens, debounced peer changes. One round at a time.
  void schedule_housekeeping() {
    housekeeping_.expires_after(std::chrono::seconds(1));
    housekeeping_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping_)
        return;
      if (!maintaining_) {
        maintaining_ = true;
        boost::asio::post(runtime_.blocking, [this] {
          coordinator_->maintain();
          boost::asio::post(runtime_.io, [this] { maintaining_ = false; });
        });
      }
      schedule_housekeeping();
    });
  }
};

void declare(shared::config::Schema& s) {
  constexpr std::int64_t kMiB = std::int64_t{1024} * 1024;
  s.boolean("coordinator.enabled", true, "run the coordinator and its HTTPS API")
      .string("coordinator.listen", "0.0.0.0:8443", "address:port of the HTTPS API")
      .string("coordinator.advertised_url", "",
              "URL put into join strings (default: derived from coordinator.listen)")
      .strings("coordinator.server_names", {},
               "names and IPs of the server certificate (default: localhost, 127.0.0.1, the "
               "listen address and the host name)")
      .duration("coordinator.certificate_ttl", std::chrono::hours(24 * 7),
                "lifetime of node certificates")
      .string("coordinator.auto_accept", "",
              "selector of machines that join with a PXE boot token and are enrolled without "
              "'lab node accept' (empty: none)")
      .integer("coordinator.max_header_bytes", std::int64_t{16} * 1024,
               "largest request line and headers accepted (larger: 431)", 1024, kMiB)
      .integer("coordinator.max_body_bytes", kMiB, "largest request body accepted (larger: 413)",
               1024, 64 * kMiB)
      .duration("coordinator.request_timeout", std::chrono::seconds(10),
                "time a client has to send a whole request, and longest idle keep-alive (slow "
                "senders get 408)")
      .duration("coordinator.write_timeout", std::chrono::seconds(30),
                "a response write that makes no progress for this long closes the connection")
      .duration("coordinator.handshake_timeout", std::chrono::seconds(10),
                "time a client has to finish the TLS handshake")
      .integer("coordinator.max_connections", 20000,
               "open connections past this are closed at once", 1, 1000000)
      .duration("coordinator.long_poll_max", std::chrono::seconds(55),
                "longest a bundle long-poll is held (the agent's wait= is capped to this)")
      .integer("coordinator.max_parked", 50000,
               "bundle long-polls parked at once; more are answered 503", 1, 1000000)
      .duration("coordinator.renew_grace", std::chrono::hours(24 * 30),
                "how long after its certificate expired a node may renew by proving it holds "
                "the key, without a new token")
      .integer("coordinator.refusal_burst", 20,
               "joins and renewals an address may have refused before it is answered 429", 1,
               100000)
      .integer("coordinator.refusals_per_minute", 30, "how fast that budget comes back, per minute",
               1, 1000000)
      .duration("coordinator.refusal_audit_window", std::chrono::seconds(60),
                "refused joins and renewals of one address are audited as one row per window")
      .duration("coordinator.peer_debounce", std::chrono::seconds(30),
                "a changed peer address reaches every bundle at most this often")
      .duration("coordinator.report_interval", std::chrono::seconds(10),
                "an agent may report once per this interval (after a burst of 6)")
      .duration("coordinator.offline_after", std::chrono::seconds(60),
                "a node whose agent has not polled for this long is shown offline");
}

Result<std::unique_ptr<Component>> create(Runtime& runtime, Services& services) {
  const auto& cfg = runtime.config;
  if (!cfg.boolean("coordinator.enabled"))
    return std::unique_ptr<Component>();
  LAB_TRY_ASSIGN(ListenAddress listen,
                 parse_listen("coordinator.listen", cfg.string("coordinator.listen")));
  if (listen.port == 0) {
    LAB_TRY_ASSIGN(listen.port, free_port(listen.host));
  }
  coordinator::Options options;
  options.data_dir = runtime.data_dir;
  options.advertised_url = cfg.string("coordinator.advertised_url");
  if (options.advertised_url.empty())
    options.advertised_url = "https://" + url_host(listen.host) + ":" + std::to_string(listen.port);
  options.server_names = cfg.strings("coordinator.server_names");
  if (options.server_names.empty()) {
    options.server_names = {"localhost", "127.0.0.1"};
    if (listen.host != "0.0.0.0" && listen.host != "::" && listen.host != "127.0.0.1")
      options.server_names.push_back(listen.host);
    const auto host = url_host("0.0.0.0");
    if (host != "127.0.0.1")
      options.server_names.push_back(host);
  }
  options.certificate_ttl = cfg.duration("coordinator.certificate_ttl");
  options.auto_accept = cfg.string("coordinator.auto_accept");
  options.boot_events = services.boot_events;
  options.renew_grace = cfg.duration("coordinator.renew_grace");
  options.refusal_window = cfg.duration("coordinator.refusal_audit_window");
  options.peer_debounce = cfg.duration("coordinator.peer_debounce");
  options.report_interval = cfg.duration("coordinator.report_interval");
  options.offline_after = cfg.duration("coordinator.offline_after");
  LAB_TRY_ASSIGN(auto c, coordinator::Coordinator::open(std::move(options)));
  services.registry = c.get();

  ApiLimits limits;
  limits.report_retry_after = cfg.duration("coordinator.report_interval");
  limits.http.header_bytes = static_cast<std::size_t>(cfg.integer("coordinator.max_header_bytes"));
  limits.http.body_bytes = static_cast<std::size_t>(cfg.integer("coordinator.max_body_bytes"));
  limits.http.read_timeout = cfg.duration("coordinator.request_timeout");
  limits.http.write_timeout = cfg.duration("coordinator.write_timeout");
  limits.http.handshake_timeout = cfg.duration("coordinator.handshake_timeout");
  limits.http.max_connections =
      static_cast<std::size_t>(cfg.integer("coordinator.max_connections"));
  limits.max_wait = cfg.duration("coordinator.long_poll_max");
  limits.max_parked = static_cast<std::size_t>(cfg.integer("coordinator.max_parked"));
  limits.refusals.burst = static_cast<double>(cfg.integer("coordinator.refusal_burst"));
  limits.refusals.per_second =
      static_cast<double>(cfg.integer("coordinator.refusals_per_minute")) / 60.0;
  return std::unique_ptr<Component>(std::make_unique<CoordinatorComponent>(
      runtime, std::move(c), std::move(listen), limits, services.recorder, services.boot_events));
}

}  // namespace

ComponentSpec coordinator_component() {
  return {"coordinator", declare, create};
}

}  // namespace lab::bootstrap::serve
