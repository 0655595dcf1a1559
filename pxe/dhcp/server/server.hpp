#pragma once

#include "pxe/dhcp/engine/engine.hpp"
#include "pxe/dhcp/engine/lease_store.hpp"
#include "pxe/dhcp/wire/message.hpp"
#include "shared/errors/error.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace lab::shared::metrics {
class Registry;
}

namespace lab::pxe::dhcp::server {

/// Where the socket layer failed; one value per failure site.
enum class ServerError {
  socket_failed = 1,     // socket() failed
  bind_to_device,        // SO_BINDTODEVICE on the configured interface failed
  bind_failed,           // bind() on the DHCP or proxy port failed (in use, no permission)
  probe_failed,          // the conflict probe could not send its DISCOVER
  no_interface_address,  // the interface has no IPv4 address to serve from
};
const boost::system::error_category& server_category() noexcept;
inline boost::system::error_code make_error_code(ServerError e) noexcept {
  return {static_cast<int>(e), server_category()};
}

struct ServerOptions {
  std::string interface;    // SO_BINDTODEVICE; empty: every interface
  std::uint16_t port = 67;  // the client port is port + 1 (68)
  bool proxy_port = false;  // also serve PXE boot server requests on 4011
  std::uint16_t proxy_port_number = 4011;
  std::size_t batch = 64;  // packets read per wake-up; their ACKs share one fsync
  /// Where the server's figures go (metrics.hpp); null: none. Must outlive the server.
  shared::metrics::Registry* metrics = nullptr;
  /// How often the pool gauges (addresses in use per subnet) are refreshed.
  std::chrono::milliseconds pool_refresh{5000};
};

/// Counters for status and tests; read on the server's strand.
struct ServerStats {
  std::uint64_t received = 0;
  std::uint64_t malformed = 0;
  std::uint64_t ignored = 0;
  std::uint64_t sent = 0;
  std::uint64_t send_failed = 0;
  std::uint64_t commit_failed = 0;
};

/// The DHCP server: UDP sockets on the DHCP port (and 4011 in proxy mode) feeding one engine.
/// Packets are read in batches; the leases a batch binds are committed to the store with one
/// call, and the ACKs are sent only once the store has made them durable. Every handler runs
/// on one strand of `io`; the engine and store must outlive the server.
class Server {
 public:
  /// Opens and binds the sockets and starts receiving.
  static Result<std::unique_ptr<Server>> start(boost::asio::io_context& io, engine::Engine& engine,
                                               engine::LeaseStore& store, ServerOptions options);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  /// Closes the sockets; calls `stopped` on the io_context once commits in flight finished.
  void stop(std::function<void()> stopped);

  struct Impl;

 private:
  explicit Server(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

/// Looks for another DHCP server on the segment: broadcasts a DISCOVER from a throw-away,
/// locally administered MAC on `interface` (again every second) and waits up to `wait` for an
/// OFFER to it. Returns the other server's identifier, or nullopt when nobody answered. Blocking;
/// call before the server binds its own port. Fails when the client port (server_port + 1) is
/// taken.
Result<std::optional<wire::Ipv4>> probe_other_server(const std::string& interface,
                                                     std::uint16_t server_port,
                                                     std::chrono::milliseconds wait);

/// The first IPv4 address of an interface, for dhcp.server_ip when it is not set.
Result<wire::Ipv4> interface_address(const std::string& interface);

}  // namespace lab::pxe::dhcp::server

template <>
struct boost::system::is_error_code_enum<lab::pxe::dhcp::server::ServerError> : std::true_type {};
