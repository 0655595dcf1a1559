#pragma once

#include "pxe/events/event.hpp"
#include "pxe/tftp/engine/transfer.hpp"
#include "shared/errors/error.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace lab::shared::metrics {
class Registry;
}

namespace lab::pxe::tftp::server {

enum class ServerError {
  bad_listen_address = 1,  // tftp.listen does not parse as an IP address
  bind_failed,             // the listening socket could not be bound
};
const boost::system::error_category& server_category() noexcept;
inline boost::system::error_code make_error_code(ServerError e) noexcept {
  return {static_cast<int>(e), server_category()};
}

struct ServerConfig {
  std::string address = "0.0.0.0";
  std::uint16_t port = 69;  // 0: any free port (tests), see Server::port()
  std::filesystem::path root;
  std::size_t max_transfers = 128;
  /// Transfers one client address may run at once (engine::Admission): a host that sends
  /// requests from many ports and never acknowledges cannot take every slot. PXE firmware and
  /// iPXE fetch one file at a time.
  std::size_t max_transfers_per_client = 8;
  /// Files up to this size are served from memory; larger ones with pread.
  std::uint64_t cache_max_file = 4ULL << 20;
  std::uint64_t cache_max_total = 64ULL << 20;
  engine::Settings transfer;
  /// Where the server's figures go (lab_tftp_*); null: none. Must outlive the server.
  shared::metrics::Registry* metrics = nullptr;
};

/// Read-only TFTP server: one listening UDP socket, and one socket on an ephemeral port (the
/// transfer ID) per transfer, all on the caller's io_context. Every transfer has its own strand
/// and timer; at most `max_transfers` run at once and at most `max_transfers_per_client` for
/// one client address; further requests get an ERROR saying which limit was reached.
/// Reports tftp_start / tftp_done / tftp_error to `events`, which must outlive the server.
class Server {
 public:
  Server(boost::asio::io_context& io, ServerConfig config, events::Sink& events);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  /// Must run after stop() has completed, or after the io_context has stopped.
  ~Server();

  /// Opens the root and binds the listening socket. Call from any thread before io.run().
  Result<void> start();
  /// The bound port (the real one when configured with 0).
  [[nodiscard]] std::uint16_t port() const;
  /// Closes the listening socket; transfers in flight run to completion, then `stopped` is
  /// posted to the io_context. Safe to call from any thread, once.
  void stop(std::function<void()> stopped);
  /// Transfers running now.
  [[nodiscard]] std::size_t active_transfers() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace lab::pxe::tftp::server

template <>
struct boost::system::is_error_code_enum<lab::pxe::tftp::server::ServerError> : std::true_type {};
