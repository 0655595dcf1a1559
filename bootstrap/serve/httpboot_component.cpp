// `lab serve` component "httpboot": per-machine iPXE scripts and boot files over HTTP.
#include "bootstrap/serve/component.hpp"
#include "bootstrap/serve/services.hpp"
#include "pxe/httpboot/server/server.hpp"
#include "pxe/recorder/recorder.hpp"
#include "shared/log/log.hpp"

#include <charconv>

namespace lab::bootstrap::serve {
namespace {

enum class HttpBootConfigError {
  bad_listen = 1,  // httpboot.listen is not ADDRESS:PORT
  root_create,     // the default root under data_dir could not be created
};
const boost::system::error_category& httpboot_config_category() noexcept {
  static const ErrorCategory<HttpBootConfigError> kCategory(
      "lab.serve.httpboot", [](HttpBootConfigError e) noexcept -> const char* {
        switch (e) {
          case HttpBootConfigError::bad_listen:
            return "httpboot.listen is not ADDRESS:PORT";
          case HttpBootConfigError::root_create:
            return "cannot create the HTTP boot root";
        }
        return "unknown httpboot config error";
      });
  return kCategory;
}
boost::system::error_code make_error_code(HttpBootConfigError e) noexcept {
  return {static_cast<int>(e), httpboot_config_category()};
}

}  // namespace
}  // namespace lab::bootstrap::serve

template <>
struct boost::system::is_error_code_enum<lab::bootstrap::serve::HttpBootConfigError>
    : std::true_type {};

namespace lab::bootstrap::serve {
namespace {

// "0.0.0.0:8080", "[::]:8080" → address and port.
Result<std::pair<std::string, std::uint16_t>> parse_listen(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return Error(HttpBootConfigError::bad_listen, "httpboot.listen = '" + text + "'");
  std::string address = text.substr(0, colon);
  if (address.size() >= 2 && address.front() == '[' && address.back() == ']')
    address = address.substr(1, address.size() - 2);
  const std::string port_text = text.substr(colon + 1);
  std::uint16_t port = 0;
  const auto [ptr, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port_text.empty())
    return Error(HttpBootConfigError::bad_listen, "httpboot.listen = '" + text + "': bad port");
  return std::make_pair(address, port);
}

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
                    pxe::recorder::Recorder* recorder, pxe::registry::Registry* registry)
      : own_recorder_(recorder == nullptr ? std::make_unique<pxe::recorder::Recorder>() : nullptr),
        server_(runtime.io, runtime.blocking, std::move(options),
                recorder != nullptr ? *recorder : *own_recorder_, registry) {}

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
                .tables("httpboot.profiles", profile,
                        "boot profiles, first matching selector wins; without any, unknown "
                        "machines boot agent/vmlinuz + agent/initrd.img (discovery)");
          },
      .create = [](Runtime& runtime, Services& services) -> Result<std::unique_ptr<Component>> {
        const auto& c = runtime.config;
        if (!c.boolean("httpboot.enabled"))
          return std::unique_ptr<Component>();
        LAB_TRY_ASSIGN(auto listen, parse_listen(c.string("httpboot.listen")));
        pxe::httpboot::ServerOptions options;
        options.address = listen.first;
        options.port = listen.second;
        options.root = c.string("httpboot.root");
        if (options.root.empty()) {
          // Only the default location is created: a configured root that is missing is a
          // typo to report, not a directory to make.
          options.root = runtime.data_dir / "boot";
          std::error_code ec;
          std::filesystem::create_directories(options.root, ec);
          if (ec) {
            return Error(HttpBootConfigError::root_create,
                         options.root.string() + ": " + ec.message());
          }
        }
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
        // Boot clients send no bodies worth the name; a slow one must not hold a connection.
        options.limits.body_bytes = 4096;
        options.limits.read_timeout = std::chrono::seconds(15);
        return std::unique_ptr<Component>(std::make_unique<HttpBootComponent>(
            runtime, std::move(options), services.recorder, services.registry));
      },
  };
}

}  // namespace lab::bootstrap::serve
