// `lab serve` component "tftp": the read-only TFTP server on the appliance's io_context.
#include "bootstrap/serve/component.hpp"
#include "bootstrap/serve/config_values.hpp"
#include "bootstrap/serve/services.hpp"
#include "pxe/events/event.hpp"
#include "pxe/tftp/server/server.hpp"
#include "shared/log/log.hpp"

namespace lab::bootstrap::serve {
namespace {

class TftpComponent final : public Component {
 public:
  TftpComponent(Runtime& runtime, pxe::tftp::server::ServerConfig config, pxe::events::Sink* events)
      : events_(events != nullptr ? events : &null_sink_),
        config_(config),
        server_(runtime.io, std::move(config), *events_) {}

  [[nodiscard]] std::string_view name() const override { return "tftp"; }

  Result<void> start() override {
    LAB_TRY(server_.start());
    log_.info(
        "listening",
        {{"address", config_.address}, {"port", server_.port()}, {"root", config_.root.string()}});
    return {};
  }

  void stop(std::function<void()> stopped) override { server_.stop(std::move(stopped)); }

 private:
  pxe::events::NullSink null_sink_;
  pxe::events::Sink* events_;
  pxe::tftp::server::ServerConfig config_;
  pxe::tftp::server::Server server_;
  shared::log::Logger log_{"tftp"};
};

}  // namespace

ComponentSpec tftp_component() {
  return {
      .name = "tftp",
      .declare_config =
          [](shared::config::Schema& s) {
            s.boolean("tftp.enabled", false, "serve boot files over TFTP (read-only)")
                .string("tftp.listen", "0.0.0.0:69", "address:port of the TFTP server")
                .string("tftp.root", "", "directory served over TFTP; empty: <data_dir>/tftp")
                .integer("tftp.max_transfers", 128, "transfers running at once", 1, 10000)
                .integer("tftp.max_transfers_per_client", 8,
                         "transfers one client address may run at once (a host that never "
                         "acknowledges holds each for 31 s)",
                         1, 10000)
                .duration("tftp.max_transfer_time", std::chrono::minutes(10),
                          "a transfer still running after this long is aborted with an error")
                .integer("tftp.max_blksize", 1468,
                         "largest block size granted (1468 fits a 1500-byte MTU)", 8, 65464)
                .integer("tftp.cache_max_file", 4LL << 20,
                         "files up to this many bytes are served from memory", 0, 1LL << 30);
          },
      .create = [](Runtime& runtime, Services& services) -> Result<std::unique_ptr<Component>> {
        const auto& c = runtime.config;
        if (!c.boolean("tftp.enabled"))
          return std::unique_ptr<Component>();
        LAB_TRY_ASSIGN(auto listen, parse_listen("tftp.listen", c.string("tftp.listen")));
        pxe::tftp::server::ServerConfig config;
        config.address = listen.host;
        config.port = listen.port;
        LAB_TRY_ASSIGN(config.root, served_root(runtime.data_dir, c.string("tftp.root"), "tftp"));
        config.max_transfers = static_cast<std::size_t>(c.integer("tftp.max_transfers"));
        config.metrics = &runtime.metrics;
        config.max_transfers_per_client =
            static_cast<std::size_t>(c.integer("tftp.max_transfers_per_client"));
        config.transfer.max_transfer_time = c.duration("tftp.max_transfer_time");
        if (config.transfer.max_transfer_time < std::chrono::seconds(1))
          return Error(shared::config::ConfigError::invalid_value,
                       "tftp.max_transfer_time = \"" +
                           shared::config::format_duration(c.duration("tftp.max_transfer_time")) +
                           "\": must be at least 1s");
        config.transfer.max_blksize = static_cast<std::size_t>(c.integer("tftp.max_blksize"));
        config.cache_max_file = static_cast<std::uint64_t>(c.integer("tftp.cache_max_file"));
        config.cache_max_total = std::max<std::uint64_t>(64ULL << 20, config.cache_max_file * 4);
        return std::unique_ptr<Component>(
            std::make_unique<TftpComponent>(runtime, std::move(config), services.boot_events));
      },
  };
}

}  // namespace lab::bootstrap::serve
