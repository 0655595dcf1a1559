#pragma once

#include "shared/config/config.hpp"
#include "shared/errors/error.hpp"

#include <filesystem>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

namespace boost::asio {
class io_context;
class thread_pool;
}  // namespace boost::asio

namespace lab::shared::metrics {
class Registry;
}

namespace lab::bootstrap::serve {

/// What every component of `lab serve` shares: the one io_context, a pool for blocking work
/// (SQLite writes, libarchive, libcurl), the data directory, the loaded configuration and the
/// metrics registry every component reports its figures to (served by the "metrics" component
/// and the API's /metrics; it outlives every component).
/// Blocking work posts its result back to the strand that asked for it.
struct Runtime {
  boost::asio::io_context& io;
  boost::asio::thread_pool& blocking;
  std::filesystem::path data_dir;
  const shared::config::Config& config;
  shared::metrics::Registry& metrics;
};

/// A part of the appliance (coordinator API, DHCP, TFTP, HTTP boot). Started in order on the io
/// thread before it runs, stopped in reverse order on SIGTERM/SIGINT.
class Component {
 public:
  virtual ~Component() = default;
  [[nodiscard]] virtual std::string_view name() const = 0;
  /// Binds sockets and starts accepting; an error stops `lab serve` before it reports ready.
  virtual Result<void> start() = 0;
  /// Stops accepting new work and lets work in flight finish; must not block. Calls
  /// `stopped` (on the io_context) once nothing of the component is left running.
  virtual void stop(std::function<void()> stopped) = 0;
};

/// How `lab serve` learns about a component: the config keys it adds (under its own prefix),
/// and a factory that returns nullptr when the component is disabled by configuration.
/// Components that other components use (the coordinator's registry for PXE) are reached
/// through `Services`, filled in by earlier factories.
struct Services;

struct ComponentSpec {
  std::string_view name;
  std::function<void(shared::config::Schema&)> declare_config;
  std::function<Result<std::unique_ptr<Component>>(Runtime&, Services&)> create;
};

/// Everything `lab serve` can run, in start order. Defined in components.cpp.
std::vector<ComponentSpec> all_components();

}  // namespace lab::bootstrap::serve
