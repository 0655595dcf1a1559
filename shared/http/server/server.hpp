#pragma once

#include "shared/errors/error.hpp"
#include "shared/http/message/message.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace boost::asio {
class io_context;
}

namespace lab::shared::http {

/// Every resource a client can make the server hold is bounded.
struct Limits {
  std::size_t header_bytes = std::size_t{16} * 1024;
  std::size_t body_bytes = std::size_t{1024} * 1024;
  /// A whole request (headers and body) must arrive within this time of the server starting to
  /// wait for it; this also closes idle keep-alive connections. Slow senders get 408.
  std::chrono::milliseconds read_timeout{30000};
  /// A write that makes no progress for this long closes the connection.
  std::chrono::milliseconds write_timeout{60000};
  /// TLS handshake deadline.
  std::chrono::milliseconds handshake_timeout{10000};
  /// Connections past this are accepted and closed at once.
  std::size_t max_connections = 20000;
};

/// TLS for a TCP listener. With `client_ca_pem`, clients are asked for a certificate; a
/// handshake never fails because of it: Peer::client_cert_verified tells the handler whether
/// the certificate chains to that CA, so refusals come as HTTP 401/403, not as TLS alerts.
struct TlsConfig {
  std::string certificate_chain_pem;  // leaf first
  std::string private_key_pem;
  std::string client_ca_pem;
};

/// Completes a request. Call exactly once, from any thread; the response is written on the
/// connection's strand. If every copy is dropped uncalled, the client gets 500.
using Reply = std::function<void(Response)>;
/// Called on the connection's strand with a complete request. May reply later (long-polls).
using Handler = std::function<void(Request, Reply)>;

struct ServerStats {
  std::uint64_t connections_open = 0;
  std::uint64_t connections_total = 0;
  std::uint64_t requests_total = 0;
  std::uint64_t rejected_total = 0;  // 4xx produced by the server itself (limits, parse errors)
};

/// An HTTP/1.1 server on one io_context: TCP (plain or TLS 1.2+) and unix-socket listeners,
/// a strand per connection, keep-alive, limits and timeouts, HEAD, file bodies with sendfile.
class Server {
 public:
  Server(boost::asio::io_context& io, Handler handler, Limits limits = {});
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  /// Binds and listens; port 0 picks a free port. Returns the bound port.
  Result<std::uint16_t> listen_tcp(std::string_view address, std::uint16_t port,
                                   std::optional<TlsConfig> tls = std::nullopt);
  /// Replaces the certificate, key and client CA of every TLS listener for connections
  /// accepted from now on (a renewed certificate); connections already open keep theirs.
  Result<void> reload_tls(const TlsConfig& tls);
  /// Listens on a unix socket (a stale socket file is replaced); Peer::credentials is set.
  Result<void> listen_unix(const std::filesystem::path& path, unsigned mode = 0666);

  /// Stops accepting, closes idle connections, lets requests in flight finish, then calls
  /// `stopped` on the io_context. Handlers holding a Reply (long-polls) must be answered by
  /// their owner for this to complete.
  void stop(std::function<void()> stopped);

  [[nodiscard]] ServerStats stats() const;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace lab::shared::http
