#pragma once
// A real `lab serve` on loopback for the coordinator's integration tests, with the ways a test
// talks to it: the `lab` CLI, curl, and in-process HTTPS clients (operator and joined nodes).
#include "shared/crypto/keys.hpp"
#include "shared/crypto/x509.hpp"
#include "shared/http/client/client.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <boost/json/value.hpp>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lab::tests::coordinator {

/// One `lab serve --data-dir D` with only the coordinator, listening on 127.0.0.1:<free port>.
class Appliance {
 public:
  /// Starts it and waits until it is ready; `sets` are extra `--set KEY=VALUE` overrides.
  explicit Appliance(std::vector<std::string> sets = {});
  Appliance(const Appliance&) = delete;
  Appliance& operator=(const Appliance&) = delete;

  /// Starts `lab serve` again on the same data directory and port (after kill9()).
  void start();
  /// SIGKILL: no chance to flush anything.
  void kill9();
  /// SIGTERM and the exit code.
  int stop();

  [[nodiscard]] const std::filesystem::path& data_dir() const { return data_dir_; }
  [[nodiscard]] const std::string& url() const { return url_; }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::string ca_pem() const;
  [[nodiscard]] std::string operator_token() const;
  [[nodiscard]] std::string output() const { return serve_ ? serve_->output() : std::string(); }
  [[nodiscard]] const TempDir& dir() const { return dir_; }

  /// Runs `lab ARGS…` against this appliance (LAB_DATA_DIR set, nothing else).
  CommandResult lab(const std::vector<std::string>& args,
                    const std::map<std::string, std::string>& env = {}) const;
  /// Runs `lab ARGS… --output json` and parses stdout; fails the test when it does not parse.
  boost::json::value lab_json(const std::vector<std::string>& args) const;
  /// Runs `curl -sS --cacert ca.pem -o BODY -w '%{http_code}' ARGS… URL+path`; returns
  /// {status, body}. Status 0 when curl could not complete the request.
  struct CurlResult {
    int status = 0;
    std::string body;
    std::string output;  // curl's own messages
  };
  CurlResult curl(const std::vector<std::string>& args, const std::string& path) const;

  /// An HTTPS client that trusts the coordinator CA, with the operator's bearer token.
  [[nodiscard]] shared::http::Client operator_client() const;
  /// An HTTPS client that trusts the coordinator CA and presents nothing.
  [[nodiscard]] shared::http::Client anonymous_client() const;

  /// Creates a join token through the CLI ("k=v,…" labels) and returns the token itself.
  [[nodiscard]] std::string create_token(const std::string& labels = "",
                                         const std::string& ttl = "1h") const;

 private:
  TempDir dir_;
  std::filesystem::path data_dir_;
  std::vector<std::string> sets_;
  std::uint16_t port_ = 0;
  std::string url_;
  std::optional<ChildProcess> serve_;
};

/// A loopback TCP port nothing listens on right now.
std::uint16_t free_loopback_port();

/// A machine that joined: its TLS key and certificate, its sealing key, what the join said.
struct JoinedNode {
  std::string id;
  std::string name;
  std::string state;
  std::string bundle_key;  // base64url Ed25519
  shared::crypto::EcPrivateKey key;
  shared::crypto::X25519PrivateKey sealing;
  std::string certificate_pem;
};

/// The JoinRequest JSON a real agent would send: a fresh P-256 key and CSR, an X25519 key.
struct JoinMaterial {
  shared::crypto::EcPrivateKey key;
  shared::crypto::X25519PrivateKey sealing;
  std::string body;  // JoinRequest JSON
};
JoinMaterial make_join_request(const std::string& token, const std::string& hostname);

/// POST /v1/join; the raw answer.
Result<shared::http::ClientResponse> post_join(const Appliance& a, const std::string& body);

/// Joins with `token`; fails the test (ADD_FAILURE) and returns nullopt when refused.
std::optional<JoinedNode> join(const Appliance& a, const std::string& token,
                               const std::string& hostname);

/// An mTLS client presenting the node's certificate.
shared::http::Client node_client(const Appliance& a, const JoinedNode& node,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(30));

/// Writes PEM files for curl --cert/--key under the appliance's temp dir; returns the paths.
std::pair<std::filesystem::path, std::filesystem::path> write_client_pem(
    const Appliance& a, const std::string& name, const std::string& cert_pem,
    const std::string& key_pem);

}  // namespace lab::tests::coordinator
