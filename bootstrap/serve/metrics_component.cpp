// `lab serve` component "metrics": every component's figures in the Prometheus text format on
// one plain-HTTP listener, the way exporters are scraped (GET /metrics). Off unless
// metrics.listen is set: a port opened by default would collide with other exporters on the
// host and with a second appliance on one box, and the coordinator API already answers an
// authenticated GET /metrics with the same text.
#include "bootstrap/serve/component.hpp"
#include "bootstrap/serve/config_values.hpp"
#include "shared/http/server/server.hpp"
#include "shared/log/log.hpp"
#include "shared/metrics/metrics.hpp"

namespace lab::bootstrap::serve {
namespace {

class MetricsComponent final : public Component {
 public:
  MetricsComponent(Runtime& runtime, ListenAddress listen)
      : listen_(std::move(listen)),
        server_(
            runtime.io,
            [&registry = runtime.metrics](const shared::http::Request& req,
                                          const shared::http::Reply& reply) {
              if (req.path != "/metrics") {
                reply(shared::http::Response::error(404, "not found; metrics are at /metrics"));
                return;
              }
              if (req.method != "GET" && req.method != "HEAD") {
                auto r = shared::http::Response::error(405, "method not allowed");
                r.headers.set("Allow", "GET, HEAD");
                reply(std::move(r));
                return;
              }
              auto r = shared::http::Response::text(200, registry.render());
              r.headers.set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
              reply(std::move(r));
            },
            limits()) {}

  [[nodiscard]] std::string_view name() const override { return "metrics"; }

  Result<void> start() override {
    LAB_TRY_ASSIGN(const std::uint16_t port, server_.listen_tcp(listen_.host, listen_.port));
    const bool v6 = listen_.host.find(':') != std::string::npos;
    log_.info("listening", {{"url", "http://" + (v6 ? "[" + listen_.host + "]" : listen_.host) +
                                        ":" + std::to_string(port) + "/metrics"}});
    return {};
  }

  void stop(std::function<void()> stopped) override { server_.stop(std::move(stopped)); }

 private:
  // A scraper sends small GETs a few times a minute; nothing else needs room here.
  static shared::http::Limits limits() {
    shared::http::Limits l;
    l.body_bytes = 0;
    l.max_connections = 64;
    l.read_timeout = std::chrono::seconds(10);
    return l;
  }

  ListenAddress listen_;
  shared::http::Server server_;
  shared::log::Logger log_{"metrics"};
};

}  // namespace

ComponentSpec metrics_component() {
  return {
      .name = "metrics",
      .declare_config =
          [](shared::config::Schema& s) {
            s.string("metrics.listen", "",
                     "address:port serving every component's metrics at /metrics over plain "
                     "HTTP for Prometheus (e.g. 127.0.0.1:9464); empty: off (the API's "
                     "authenticated /metrics still answers)");
          },
      .create = [](Runtime& runtime, Services&) -> Result<std::unique_ptr<Component>> {
        const std::string& listen = runtime.config.string("metrics.listen");
        if (listen.empty())
          return std::unique_ptr<Component>();
        LAB_TRY_ASSIGN(auto address, parse_listen("metrics.listen", listen));
        return std::unique_ptr<Component>(
            std::make_unique<MetricsComponent>(runtime, std::move(address)));
      },
  };
}

}  // namespace lab::bootstrap::serve
