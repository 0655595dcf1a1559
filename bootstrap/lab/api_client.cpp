#include "bootstrap/lab/api_client.hpp"

#include "shared/cli/cli.hpp"
#include "shared/crypto/x509.hpp"
#include "shared/http/client/client.hpp"
#include "shared/json/json.hpp"

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace lab::bootstrap::commands {
namespace {

const char* message(LabError e) noexcept {
  switch (e) {
    case LabError::unreachable:
      return "coordinator unreachable";
    case LabError::unauthorized:
      return "operator credential refused";
    case LabError::not_found:
      return "not found";
    case LabError::conflict:
      return "conflict";
    case LabError::invalid:
      return "refused by the coordinator";
    case LabError::server:
      return "coordinator error";
    case LabError::bad_response:
      return "unexpected answer";
    case LabError::local:
      return "local file";
    case LabError::usage:
      return "invalid argument";
    case LabError::verify_failed:
      return "verification failed";
    case LabError::forbidden:
      return "forbidden";
    case LabError::untrusted:
      return "coordinator not trusted";
    case LabError::input:
      return "input file";
  }
  return "unknown";
}

std::string env(const char* name) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read before any thread
  return v == nullptr ? std::string() : std::string(v);
}

Result<std::string> read_text(const std::filesystem::path& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Error(LabError::local, "cannot read the " + std::string(what) + " " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' '))
    s.pop_back();
  return s;
}

}  // namespace

const boost::system::error_category& lab_category() noexcept {
  static const ErrorCategory<LabError> kCategory("lab.cli", &message);
  return kCategory;
}

void add_client_flags(CLI::App& noun, const std::shared_ptr<ClientFlags>& flags) {
  noun.add_option("--server", flags->server,
                  "coordinator URL (env LAB_SERVER; default: <data-dir>/coordinator.url, then "
                  "https://127.0.0.1:8443)");
  noun.add_option("--ca", flags->ca,
                  "CA certificate to trust (env LAB_CA; default <data-dir>/ca.pem)");
  noun.add_option("--token-file", flags->token_file,
                  "file holding the operator token (env LAB_TOKEN holds the token itself; "
                  "default <data-dir>/operator.token)");
  noun.add_option("--data-dir", flags->data_dir,
                  "the appliance's data directory (env LAB_DATA_DIR; default /var/lib/lab)");
  noun.fallthrough();
}

struct ApiClient::Impl {
  explicit Impl(const shared::http::ClientOptions& o) : client(o) {}
  shared::http::Client client;
  shared::http::ClientOptions options;  // to look at what a refused server presents
  std::string ca_source;                // "--ca FILE", "LAB_CA=FILE" or the data dir's ca.pem
};

ApiClient::ApiClient(std::unique_ptr<Impl> impl, std::string server, std::string token_source)
    : impl_(std::move(impl)), server_(std::move(server)), token_source_(std::move(token_source)) {}
ApiClient::ApiClient(ApiClient&&) noexcept = default;
ApiClient& ApiClient::operator=(ApiClient&&) noexcept = default;
ApiClient::~ApiClient() = default;

Result<ApiClient> ApiClient::connect(const ClientFlags& flags) {
  std::filesystem::path data_dir = flags.data_dir;
  if (data_dir.empty())
    data_dir = env("LAB_DATA_DIR");
  if (data_dir.empty())
    data_dir = "/var/lib/lab";

  std::string server = flags.server;
  std::string server_source = "--server";
  if (server.empty()) {
    server = env("LAB_SERVER");
    server_source = "LAB_SERVER";
  }
  if (server.empty()) {
    if (auto url = read_text(data_dir / "coordinator.url", "server URL"); url) {
      server = trim(*url);
      server_source = (data_dir / "coordinator.url").string();
    }
  }
  if (server.empty())
    server = "https://127.0.0.1:8443";
  while (!server.empty() && server.back() == '/')
    server.pop_back();
  if (server.starts_with("http://")) {
    return Error(LabError::usage, "the coordinator speaks HTTPS only, and " + server + " (from " +
                                      server_source + ") is plain HTTP: use https://" +
                                      server.substr(7));
  }
  if (!server.starts_with("https://")) {
    return Error(LabError::usage, "'" + server + "' (from " + server_source +
                                      ") is not a coordinator URL like https://10.0.0.1:8443");
  }

  std::filesystem::path ca = flags.ca;
  std::string ca_source = "--ca " + ca.string();
  if (ca.empty()) {
    ca = env("LAB_CA");
    ca_source = "LAB_CA=" + ca.string();
  }
  if (ca.empty()) {
    ca = data_dir / "ca.pem";
    ca_source = ca.string();
  }
  LAB_TRY_ASSIGN(std::string ca_pem, read_text(ca, "CA certificate"));

  // The first of --token-file, LAB_TOKEN and <data-dir>/operator.token; a 401 names which.
  std::string token;
  std::string token_source;
  if (!flags.token_file.empty()) {
    LAB_TRY_ASSIGN(token, read_text(flags.token_file, "operator token"));
    token_source = "--token-file " + flags.token_file;
  } else if (token = env("LAB_TOKEN"); !token.empty()) {
    token_source = "LAB_TOKEN";
  } else {
    const auto path = data_dir / "operator.token";
    LAB_TRY_ASSIGN(token, read_text(path, "operator token"));
    token_source = path.string();
  }
  token = trim(token);
  if (token.empty()) {
    // Sent as it is, it would only earn "authentication required" from the server.
    return Error(LabError::local, "the operator token from " + token_source + " is empty");
  }

  shared::http::ClientOptions o;
  o.base_url = server;
  o.ca_pem = std::move(ca_pem);
  o.bearer_token = std::move(token);
  o.timeout = std::chrono::seconds(30);
  auto impl = std::make_unique<Impl>(o);
  impl->options = std::move(o);
  impl->ca_source = std::move(ca_source);
  return ApiClient(std::move(impl), server, std::move(token_source));
}

Result<boost::json::value> ApiClient::call(std::string_view method, std::string_view path,
                                           std::string_view body, std::string_view content_type) {
  auto r =
      impl_->client.request(method, path, body, body.empty() ? std::string_view() : content_type);
  if (!r) {
    std::string why = shared::cli::error_text(r.error());
    if (why.starts_with(server_) && why.find(": ") != std::string::npos)
      why = why.substr(why.find(": ") + 2);  // the URL is said once, below
    if (r.error() == shared::http::ClientError::tls_failed &&
        why.find("certificate") != std::string::npos) {
      return tls_refused(r.error());
    }
    return Error(LabError::unreachable, "cannot reach the coordinator at " + server_ + ": " + why);
  }
  const long status = r->status;
  if (status >= 200 && status < 300) {
    if (status == 204 || r->body.empty())
      return boost::json::value();
    auto v = shared::json::parse(r->body);
    if (!v)
      return Error(LabError::bad_response,
                   "the coordinator's answer is not JSON: " + v.error().detail());
    return v;
  }
  std::string text = "HTTP " + std::to_string(status);
  if (auto v = shared::json::parse_object(r->body); v) {
    if (auto m = shared::json::get_string(*v, "error"); m)
      text = *m;
  }
  LabError code = LabError::server;
  if (status == 401) {
    // The server says whose credential it was and why it does not count (not recognised,
    // expired at …, revoked); which token the CLI sent is what the operator still needs.
    code = LabError::unauthorized;
    text += " (the token from " + token_source_ + ")";
  } else if (status == 403) {
    code = LabError::forbidden;
  } else if (status == 404) {
    code = LabError::not_found;
  } else if (status == 409) {
    code = LabError::conflict;
  } else if (status >= 400 && status < 500) {
    code = LabError::invalid;
  }
  return Error(code, text);
}

Error ApiClient::tls_refused(const Error& transport) const {
  std::string pinned = impl_->ca_source;
  if (auto ca = shared::crypto::Certificate::from_pem(impl_->options.ca_pem); ca)
    pinned = "'" + ca->common_name() + "' (" + impl_->ca_source + ")";
  shared::http::ClientOptions o = impl_->options;
  o.verify_peer = false;
  o.bearer_token.clear();
  shared::http::Client probe(o);
  auto chain = probe.peer_chain("/");
  if (!chain || chain->empty()) {
    return Error(LabError::unreachable, "TLS with the coordinator at " + server_ +
                                            " failed checking its certificate against the CA " +
                                            pinned + ": " + shared::cli::error_text(transport));
  }
  std::string presented;
  if (auto leaf = shared::crypto::Certificate::from_pem(chain->front()); leaf) {
    presented = "a certificate for '" + leaf->common_name() + "' issued by '" +
                leaf->issuer_common_name() + "'";
  } else {
    presented = "a certificate that does not parse";
  }
  return Error(LabError::untrusted, "the server at " + server_ + " presented " + presented +
                                        ", which the pinned CA " + pinned + " did not sign");
}

Result<boost::json::value> ApiClient::call_json(std::string_view method, std::string_view path,
                                                const boost::json::value& body) {
  return call(method, path, shared::json::to_string(body), "application/json");
}

int fail(const Error& e) {
  std::string_view hint;
  if (e.code().category() == lab_category()) {
    switch (static_cast<LabError>(e.code().value())) {
      case LabError::unreachable:
        hint = "is 'lab serve' running? pass --server URL (or LAB_SERVER) and --ca FILE";
        break;
      case LabError::untrusted:
        hint =
            "pass --ca with that appliance's ca.pem (its data directory), or --server with the "
            "URL of the appliance whose CA this is";
        break;
      case LabError::unauthorized:
        hint =
            "check the operator token: lab sends --token-file FILE, else LAB_TOKEN, else "
            "operator.token in --data-dir (LAB_DATA_DIR, default /var/lib/lab); an admin makes a "
            "new credential with 'lab operator add NAME'";
        break;
      case LabError::not_found:
        hint = "list what exists with the 'list' verb";
        break;
      case LabError::local:
        hint = "pass --data-dir (or LAB_DATA_DIR), or the file itself with --ca / --token-file";
        break;
      case LabError::usage:
        hint = "run with --help for the syntax";
        break;
      case LabError::input:
        hint = "check the path and that this user may read it";
        break;
      default:
        break;
    }
  }
  const std::string text = shared::cli::error_text(e);
  shared::cli::print_error("lab", text, hint);
  if (e == LabError::usage)
    return shared::cli::kExitUsage;
  return shared::cli::kExitFailure;
}

std::string url_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace lab::bootstrap::commands
