#pragma once
// A small blocking HTTP/1.1 client over Boost.Beast and OpenSSL, for programs that must stay
// light (labd): TCP with TLS 1.2+, or a unix socket; trust in exactly one CA given in memory, or
// in a CA picked from the server's own chain by a pin; a client certificate and key from memory;
// a deadline per request; body and header limits; one kept-alive connection.
//
// Why not shared/http/client (libcurl): libcurl's dependency tree (nghttp2, ldap, krb5, ssh2,
// rtmp, psl, idn2, brotli...) maps and dirties several MiB in every process that links it, and
// the agent needs none of it. Beast and Asio are linked into labd anyway for its local API.
//
// This header includes neither Beast nor Asio.

#include "shared/errors/error.hpp"
#include "shared/http/message/message.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lab::shared::http {

enum class BeastClientError {
  bad_url = 1,     // the base URL does not parse or names another scheme than http/https
  tls_setup,       // the CA, client certificate or key given in memory does not load
  resolve_failed,  // the host name does not resolve
  connect_failed,  // nothing listens there, or the network is unreachable
  timeout,         // no complete answer before the deadline
  tls_handshake,   // the TLS handshake failed (alert, protocol, or the CA refused the server)
  tls_verify,      // the server's certificate does not chain to the CA or names another host
  write_failed,    // the connection broke while the request was sent
  read_failed,     // the connection broke before the whole response arrived
  protocol,        // the server's answer is not valid HTTP/1.1
  too_large,       // the response headers or body exceed the limit
};
const boost::system::error_category& beast_client_category() noexcept;
inline boost::system::error_code make_error_code(BeastClientError e) noexcept {
  return {static_cast<int>(e), beast_client_category()};
}

/// Picks the CA to trust among the certificates the server presented (PEM, leaf first) and
/// returns its PEM, or an error that request() then returns unchanged.
using ChooseCa = std::function<Result<std::string>(const std::vector<std::string>& chain_pem)>;

struct BeastClientOptions {
  std::string base_url;     // "https://10.0.0.1:8443"; with unix_socket, "http://localhost"
  std::string unix_socket;  // connect through this socket instead of TCP
  /// Trust exactly this CA (PEM). The system's CA store is loaded only when neither ca_pem nor
  /// choose_ca is given.
  std::string ca_pem;
  /// Without ca_pem: the server's chain is read before anything is sent, this picks the CA,
  /// and the server is then verified against it (chain and host name) as if it were ca_pem;
  /// the CA is kept for later connections (trusted_ca_pem()).
  ChooseCa choose_ca;
  /// Check the server's certificate against this name instead of the URL's host (peers are
  /// known by node id, not by address; a certificate without DNS names is checked by its CN).
  std::string server_name;
  std::string client_cert_pem;  // client certificate, from memory (never a file)
  std::string client_key_pem;   // its private key, from memory
  std::string bearer_token;     // "Authorization: Bearer <token>"
  std::chrono::milliseconds connect_timeout{5000};  // resolve, connect and TLS handshake
  std::chrono::milliseconds timeout{30000};         // the whole request, connection included
  std::size_t max_body = std::size_t{64} * 1024 * 1024;
  std::size_t max_header = std::size_t{16} * 1024;
};

struct BeastResponse {
  unsigned status = 0;
  Headers headers;
  std::string body;
};

/// A blocking client that keeps its connection alive between requests and reconnects once
/// when a kept-alive connection turns out to be closed by the server. Not thread-safe: one
/// instance per thread, never on an io_context thread of the caller (it runs its own).
class BeastClient {
 public:
  explicit BeastClient(BeastClientOptions options);
  BeastClient(BeastClient&&) noexcept;
  BeastClient& operator=(BeastClient&&) noexcept;
  BeastClient(const BeastClient&) = delete;
  BeastClient& operator=(const BeastClient&) = delete;
  ~BeastClient();

  /// Any HTTP status is a successful result; errors are transport failures (BeastClientError)
  /// or the error of choose_ca.
  Result<BeastResponse> request(std::string_view method, std::string_view path,
                                std::string_view body = {}, std::string_view content_type = {},
                                const Headers& extra = {});
  Result<BeastResponse> get(std::string_view path) { return request("GET", path); }
  Result<BeastResponse> post_json(std::string_view path, std::string_view json) {
    return request("POST", path, json, "application/json");
  }

  /// The CA this client trusts: ca_pem, or the one choose_ca picked (empty before that).
  [[nodiscard]] const std::string& trusted_ca_pem() const noexcept;
  /// Closes the kept-alive connection, if any.
  void close() noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace lab::shared::http

template <>
struct boost::system::is_error_code_enum<lab::shared::http::BeastClientError> : std::true_type {};
