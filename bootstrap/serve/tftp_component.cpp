// `lab serve` component "tftp": the read-only TFTP server on the appliance's io_context.
#include "bootstrap/serve/component.hpp"
#include "bootstrap/serve/services.hpp"
#include "pxe/events/event.hpp"
#include "pxe/tftp/server/server.hpp"
#include "shared/log/log.hpp"

#include <charconv>

namespace lab::bootstrap::serve {
namespace {

enum class TftpConfigError {
  bad_listen = 1,  // tftp.listen is not ADDRESS:PORT
  root_create,     // the default root under data_dir could not be created
};
const boost::system::error_category& tftp_config_category() noexcept {
  static const ErrorCategory<TftpConfigError> kCategory(
      "lab.serve.tftp", [](TftpConfigError e) noexcept -> const char* {
        switch (e) {
          case TftpConfigError::bad_listen:
            return "tftp.listen is not ADDRESS:PORT";
          case TftpConfigError::root_create:
            return "cannot create the TFTP root";
        }
        return "unknown tftp config error";
      });
  return kCategory;
}
boost::system::error_code make_error_code(TftpConfigError e) noexcept {
  return {static_cast<int>(e), tftp_config_category()};
}

}  // namespace
}  // namespace lab::bootstrap::serve

template <>
struct boost::system::is_error_code_enum<lab::bootstrap::serve::TftpConfigError> : std::true_type {
};

namespace lab::bootstrap::serve {
namespace {

// "0.0.0.0:69", "[::]:69" → address and port.
Result<std::pair<std::string, std::uint16_t>> parse_listen(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return Error(TftpConfigError::bad_listen, "tftp.listen = '" + text + "'");
  std::string address = text.substr(0, colon);
  if (address.size() >= 2 && address.front() == '[' && address.back() == ']')
    address = address.substr(1, address.size() - 2);
  const std::string port_text = text.substr(colon + 1);
  std::uint16_t port = 0;
  const auto [ptr, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port_text.empty())
    return Error(TftpConfigError::bad_listen, "tftp.listen = '" + text + "': bad port");
  return std::make_pair(address, port);
}

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
                .integer("tftp.max_blksize", 1468,
                         "largest block size granted (1468 fits a 1500-byte MTU)", 8, 65464)
                .integer("tftp.cache_max_file", 4LL << 20,
                         "files up to this many bytes are served from memory", 0, 1LL << 30);
          },
      .create = [](Runtime& runtime, Services& services) -> Result<std::unique_ptr<Component>> {
        const auto& c = runtime.config;
        if (!c.boolean("tftp.enabled"))
          return std::unique_ptr<Component>();
        LAB_TRY_ASSIGN(auto listen, parse_listen(c.string("tftp.listen")));
        pxe::tftp::server::ServerConfig config;
        config.address = listen.first;
        config.port = listen.second;
        config.root = c.string("tftp.root");
        if (config.root.empty()) {
          // Only the default location is created: a configured root that is missing is a
          // typo to report, not a directory to make.
          config.root = runtime.data_dir / "tftp";
          std::error_code ec;
          std::filesystem::create_directories(config.root, ec);
          if (ec)
            return Error(TftpConfigError::root_create, config.root.string() + ": " + ec.message());
        }
        config.max_transfers = static_cast<std::size_t>(c.integer("tftp.max_transfers"));
        config.transfer.max_blksize = static_cast<std::size_t>(c.integer("tftp.max_blksize"));
        config.cache_max_file = static_cast<std::uint64_t>(c.integer("tftp.cache_max_file"));
        config.cache_max_total = std::max<std::uint64_t>(64ULL << 20, config.cache_max_file * 4);
        return std::unique_ptr<Component>(
            std::make_unique<TftpComponent>(runtime, std::move(config), services.boot_events));
      },
  };
}

}  // namespace lab::bootstrap::serve
