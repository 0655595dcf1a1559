#pragma once
// How the operator commands reach the coordinator: server discovery (API.md), the pinned CA,
// the operator token, and one call = one HTTP request whose error body becomes a lab::Error.

#include "shared/errors/error.hpp"

#include <boost/json/value.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace CLI {  // NOLINT(readability-identifier-naming): CLI11's namespace
class App;
}

namespace lab::bootstrap::commands {

/// One code per way an operator command fails, so the hint can say what to do.
enum class LabError {
  unreachable = 1,  // no connection, TLS failure, timeout
  unauthorized,     // 401: the operator token sent is unknown, expired or revoked
  not_found,        // 404
  conflict,         // 409
  invalid,          // 400/413/415: the server refused the input; detail says why
  server,           // 5xx
  bad_response,     // an answer that is not what the API promises
  local,            // a local file (CA, token, secret value) cannot be read
  usage,            // an argument that does not parse (label, selector, duration)
  verify_failed,    // the audit trail, or an export of it, does not verify; detail says where
  forbidden,        // 403: the operation itself is refused (a revoked node)
  untrusted,        // the server's certificate is not from the pinned CA
  input,            // a file named on the command line (--from-file) cannot be read
};
const boost::system::error_category& lab_category() noexcept;
inline boost::system::error_code make_error_code(LabError e) noexcept {
  return {static_cast<int>(e), lab_category()};
}

/// The flags every operator command accepts (with their LAB_* environment fallbacks).
struct ClientFlags {
  std::string server;  // --server / LAB_SERVER / <data_dir>/coordinator.url / default
  std::string ca;      // --ca / LAB_CA / <data_dir>/ca.pem
  std::string
      token_file;        // --token-file / LAB_TOKEN (the token itself) / <data_dir>/operator.token
  std::string data_dir;  // --data-dir / LAB_DATA_DIR / /var/lib/lab
  /// Whether -o/--output asked for a document (json or yaml) rather than a table.
  [[nodiscard]] bool document() const;
  /// Whether it asked for the wide table.
  [[nodiscard]] bool wide() const;
};

/// Adds the flags to a noun's subcommand (they may come before or after the verb).
void add_client_flags(CLI::App& noun, const std::shared_ptr<ClientFlags>& flags);

class ApiClient {
 public:
  /// Resolves the server, CA and token; fails with LabError::local when a file is missing.
  static Result<ApiClient> connect(const ClientFlags& flags);

  ApiClient(ApiClient&&) noexcept;
  ApiClient& operator=(ApiClient&&) noexcept;
  ~ApiClient();

  /// Sends one request. 2xx → the JSON body (null for 204 or an empty body); anything else →
  /// an Error with the server's message.
  Result<boost::json::value> call(std::string_view method, std::string_view path,
                                  std::string_view body = {},
                                  std::string_view content_type = "application/json");
  Result<boost::json::value> call_json(std::string_view method, std::string_view path,
                                       const boost::json::value& body);

  [[nodiscard]] const std::string& server() const noexcept { return server_; }

 private:
  struct Impl;
  ApiClient(std::unique_ptr<Impl> impl, std::string server, std::string token_source);
  /// Why TLS refused the server, naming the pinned CA and what the server presented.
  Error tls_refused(const Error& transport) const;
  std::unique_ptr<Impl> impl_;
  std::string server_;
  // Where the operator token came from: "--token-file FILE", "LAB_TOKEN" or the data
  // directory's operator.token.
  std::string token_source_;
};

/// Prints "lab: error: …" with a hint chosen by the error's code; returns the exit code.
int fail(const Error& e);

/// Percent-encodes a path segment or query value.
std::string url_encode(std::string_view s);

}  // namespace lab::bootstrap::commands

template <>
struct boost::system::is_error_code_enum<lab::bootstrap::commands::LabError> : std::true_type {};
