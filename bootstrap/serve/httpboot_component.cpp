// `lab serve` component "httpboot": per-machine iPXE scripts and boot files over HTTP.
#include "bootstrap/serve/component.hpp"
#include "bootstrap/serve/config_values.hpp"
#include "bootstrap/serve/services.hpp"
#include "pxe/httpboot/server/server.hpp"
#include "pxe/recorder/recorder.hpp"
#include "shared/log/log.hpp"

namespace lab::bootstrap::serve {
namespace {

// Without configured profiles, unknown machines still boot the agent OS in discovery mode from
// the conventional place under the root.
std::vector<pxe::httpboot::ProfileSpec> default_profiles() {
  return {{.name = std::string(pxe::httpboot::kDiscoveryProfile),
           .selector = "",
           .kernel = "agent/vmlinuz",
           .initrd = "agent/initrd.img",
           .cmdline = "console=tty0 console=ttyS0 lab.mode=discovery lab.mac={mac} "
                      "lab.server={server}"}};
}

class HttpBootComponent final : public Component {
 public:
  HttpBootComponent(Runtime& runtime, pxe::httpboot::ServerOptions options,
                    pxe::recorder::Recorder* recorder, pxe::registry::Registry* registry,
                    const pxe::registry::Leases* leases)
      : own_recorder_(recorder == nullptr ? std::make_unique<pxe::recorder::Recorder>() : nullptr),
        server_(runtime.io, runtime.blocking, std::move(options),
                recorder != nullptr ? *recorder : *own_recorder_, registry, leases) {}

  [[nodiscard]] std::string_view name() const override { return "httpboot"; }

  Result<void> start() override {
    LAB_TRY(server_.start());
    return {};
  }

  void stop(std::function<void()> stopped) override { server_.stop(std::move(stopped)); }

 private:
  // With the recorder disabled the server still needs one to attribute file fetches.
  std::unique_ptr<pxe::recorder::Recorder> own_recorder_;
  pxe::httpboot::Server server_;
};

}  // namespace

ComponentSpec httpboot_component() {
  return {
      .name = "httpboot",
      .declare_config =
          [](shared::config::Schema& s) {
            shared::config::Schema profile;
            profile.string("name", "", "profile name; \"discovery\" boots unknown machines")
                .string("selector", "", "label selector choosing the machines; empty: all known")
                .string("kernel", "",
                        "kernel: path under httpboot.root or an absolute URL; may use {token}, "
                        "{join}, {mac}, {server}")
                .string("initrd", "", "initrd: path under httpboot.root or URL; empty: none")
                .string("cmdline", "", "kernel command line; lab.join=<join string> is added");
            s.boolean("httpboot.enabled", false, "serve iPXE scripts and boot files over HTTP")
                .string("httpboot.listen", "0.0.0.0:8080", "address:port of the HTTP boot server")
                .string("httpboot.root", "",
                        "directory served under /boot/; empty: <data_dir>/boot")
                .duration("httpboot.token_ttl", std::chrono::minutes(10),
                          "how long the boot token in a script stays valid")
                .integer("httpboot.max_connections", 2000, "client connections at once", 1, 100000)
                .integer("httpboot.refusal_burst", 30,
                         "script requests an address may have refused (no lease, wrong address) "
                         "before it is answered 429",
                         1, 100000)
                .integer("httpboot.refusals_per_minute", 60,
                         "how fast that budget comes back, per minute", 1, 1000000)
                .tables("httpboot.profiles", profile,
                        "boot profiles, first matching selector wins; without any, unknown "
                        "machines boot agent/vmlinuz + agent/initrd.img (discovery)");
          },
      .create = [](Runtime& runtime, Services& services) -> Result<std::unique_ptr<Component>> {
        const auto& c = runtime.config;
        if (!c.boolean("httpboot.enabled"))
          return std::unique_ptr<Component>();
        LAB_TRY_ASSIGN(auto listen, parse_listen("httpboot.listen", c.string("httpboot.listen")));
        pxe::httpboot::ServerOptions options;
        options.address = listen.host;
        options.port = listen.port;
        LAB_TRY_ASSIGN(options.root,
                       served_root(runtime.data_dir, c.string("httpboot.root"), "boot"));
        std::vector<pxe::httpboot::ProfileSpec> specs;
        for (const auto& t : c.tables("httpboot.profiles")) {
          specs.push_back({.name = t.string("name"),
                           .selector = t.string("selector"),
                           .kernel = t.string("kernel"),
                           .initrd = t.string("initrd"),
                           .cmdline = t.string("cmdline")});
        }
        if (specs.empty())
          specs = default_profiles();
        LAB_TRY_ASSIGN(options.profiles, pxe::httpboot::ProfileSet::create(std::move(specs)));
        options.token_ttl = c.duration("httpboot.token_ttl");
        options.limits.max_connections =
            static_cast<std::size_t>(c.integer("httpboot.max_connections"));
        options.refusals.burst = static_cast<double>(c.integer("httpboot.refusal_burst"));
        options.refusals.per_second =
            static_cast<double>(c.integer("httpboot.refusals_per_minute")) / 60.0;
        // Boot clients send no bodies worth the name; a slow one must not hold a connection.
        options.limits.body_bytes = 4096;
        options.limits.read_timeout = std::chrono::seconds(15);
        options.metrics = &runtime.metrics;
        return std::unique_ptr<Component>(std::make_unique<HttpBootComponent>(
            runtime, std::move(options), services.recorder, services.registry, services.leases));
      },
  };
}

}  // namespace lab::bootstrap::serve
