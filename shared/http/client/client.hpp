#pragma once

#include "shared/errors/error.hpp"
#include "shared/http/message/message.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lab::shared::http {

enum class ClientError {
  bad_url = 1,     // the URL does not parse
  resolve_failed,  // the host name does not resolve
  connect_failed,  // nothing listens there, or the network is unreachable
  timeout,         // no complete answer within the timeout
  tls_failed,      // handshake failed: the server is not who the CA says, or refused us
  protocol,        // the server's answer is not valid HTTP
  too_large,       // the response body exceeds the limit
};
const boost::system::error_category& client_category() noexcept;
inline boost::system::error_code make_error_code(ClientError e) noexcept {
  return {static_cast<int>(e), client_category()};
}

struct ClientOptions {
  std::string base_url;         // "https://10.0.0.1:8443"; with unix_socket, "http://localhost"
  std::string unix_socket;      // connect through this socket instead of TCP
  std::string ca_pem;           // trust exactly this CA (empty: the system's CAs)
  bool verify_peer = true;      // false only to look at a chain before trusting it (see peer_chain)
  std::string client_cert_pem;  // client certificate, from memory (never a file)
  std::string client_key_pem;   // its private key, from memory
  std::string bearer_token;     // "Authorization: Bearer <token>"
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds timeout{30000};  // whole request
  std::size_t max_body = std::size_t{64} * 1024 * 1024;
};

struct ClientResponse {
  long status = 0;
  Headers headers;
  std::string body;
  std::vector<std::string> peer_chain_pem;  // only from peer_chain()
};

/// A blocking HTTP/1.1 client over libcurl that keeps its connection alive between requests.
/// Keys and certificates are passed from memory. One instance per thread; blocking calls belong
/// on a worker thread, never on an io_context thread.
class Client {
 public:
  explicit Client(ClientOptions options);
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client();

  /// Any HTTP status is a successful result; errors are transport failures only.
  Result<ClientResponse> request(std::string_view method, std::string_view path,
                                 std::string_view body = {}, std::string_view content_type = {},
                                 const Headers& extra = {});
  Result<ClientResponse> get(std::string_view path) { return request("GET", path); }
  Result<ClientResponse> post_json(std::string_view path, std::string_view json) {
    return request("POST", path, json, "application/json");
  }
  /// Connects without verifying the server and returns the certificate chain it presented
  /// (PEM, leaf first), so a caller can check a pinned CA before trusting anything.
  Result<std::vector<std::string>> peer_chain(std::string_view path);

  [[nodiscard]] const ClientOptions& options() const noexcept { return options_; }

 private:
  struct Curl;
  ClientOptions options_;
  std::unique_ptr<Curl> curl_;
};

}  // namespace lab::shared::http

template <>
struct boost::system::is_error_code_enum<lab::shared::http::ClientError> : std::true_type {};
