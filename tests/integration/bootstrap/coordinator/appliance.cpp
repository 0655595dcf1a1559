#include "tests/integration/bootstrap/coordinator/appliance.hpp"

#include "shared/crypto/encoding.hpp"
#include "shared/json/json.hpp"
#include "shared/protocol/protocol.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <stdexcept>

namespace lab::tests::coordinator {
namespace {

namespace cr = shared::crypto;

// Connect and TLS handshake: many clients at once on a shared 2-core machine under ASan can
// take several seconds, which is load, not a refusal.
constexpr std::chrono::milliseconds kConnectTimeout = 30s;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r'))
    s.pop_back();
  return s;
}

}  // namespace

// The kernel's pick for a socket bound to port 0, released again.
std::uint16_t free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error("cannot pick a free loopback port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

Appliance::Appliance(std::vector<std::string> sets)
    : dir_("lab-coord"), data_dir_(dir_.path() / "data"), sets_(std::move(sets)) {
  port_ = free_loopback_port();
  url_ = "https://127.0.0.1:" + std::to_string(port_);
  start();
}

void Appliance::start() {
  std::vector<std::string> argv = {
      lab_binary(), "serve", "--data-dir", data_dir_, "--config", dir_.write("lab.toml", ""),
      "--set", "coordinator.listen=127.0.0.1:" + std::to_string(port_),
      // Refusals are audited per caller and window: a short one, so tests see the row soon.
      "--set", "coordinator.refusal_audit_window=1s"};
  for (const auto& s : sets_) {
    argv.emplace_back("--set");
    argv.push_back(s);
  }
  serve_.reset();
  serve_.emplace(ChildProcess::start({.argv = argv, .env = {}, .netns = {}, .log = {}}));
  const bool ready = wait_until(
      [&] { return serve_->output().find("msg=ready") != std::string::npos || !serve_->running(); },
      30s);
  if (!ready || !serve_->running())
    throw std::runtime_error("lab serve did not start:\n" + serve_->output());
}

void Appliance::kill9() {
  if (serve_) {
    serve_->signal(SIGKILL);
    serve_->wait(10s);
  }
}

int Appliance::stop() {
  return serve_ ? serve_->stop() : -1;
}

std::string Appliance::ca_pem() const {
  return read_file(data_dir_ / "ca.pem");
}
std::string Appliance::operator_token() const {
  return trim(read_file(data_dir_ / "operator.token"));
}

CommandResult Appliance::lab(const std::vector<std::string>& args,
                             const std::map<std::string, std::string>& env) const {
  std::vector<std::string> argv = {lab_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto e = env;
  e.emplace("LAB_DATA_DIR", data_dir_);
  return run(argv, 60s, e);
}

boost::json::value Appliance::lab_json(const std::vector<std::string>& args) const {
  auto full = args;
  full.emplace_back("--output");
  full.emplace_back("json");
  // stderr would mix into the output; keep stdout alone.
  std::string script = "LAB_DATA_DIR='" + data_dir_.string() + "' '" + lab_binary().string() + "'";
  for (const auto& a : full)
    script += " '" + a + "'";
  script += " 2>/dev/null";
  auto r = sh(script);
  EXPECT_EQ(r.exit_code, 0) << script << "\n" << r.output;
  auto v = shared::json::parse(r.output);
  EXPECT_TRUE(v) << r.output;
  return v ? *v : boost::json::value();
}

Appliance::CurlResult Appliance::curl(const std::vector<std::string>& args,
                                      const std::string& path) const {
  static int counter = 0;
  const auto body_path = dir_.path() / ("curl-body-" + std::to_string(++counter));
  std::vector<std::string> argv = {
      "curl", "-sS",     "--max-time", "30",          "--cacert", data_dir_ / "ca.pem",
      "-o",   body_path, "-w",         "%{http_code}"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(url_ + path);
  auto r = run(argv, 60s);
  CurlResult out;
  out.output = r.output;
  // The status is the last three characters curl writes to stdout.
  if (r.output.size() >= 3)
    out.status = std::atoi(r.output.substr(r.output.size() - 3).c_str());
  out.body = read_file(body_path);
  std::filesystem::remove(body_path);
  return out;
}

shared::http::Client Appliance::operator_client() const {
  shared::http::ClientOptions o;
  o.base_url = url_;
  o.ca_pem = ca_pem();
  o.connect_timeout = kConnectTimeout;
  o.bearer_token = operator_token();
  return shared::http::Client(std::move(o));
}

shared::http::Client Appliance::anonymous_client() const {
  shared::http::ClientOptions o;
  o.base_url = url_;
  o.ca_pem = ca_pem();
  o.connect_timeout = kConnectTimeout;
  return shared::http::Client(std::move(o));
}

std::string Appliance::create_token(const std::string& labels, const std::string& ttl) const {
  std::vector<std::string> args = {"token", "create", "--ttl", ttl};
  if (!labels.empty()) {
    args.emplace_back("--label");
    args.push_back(labels);
  }
  auto v = lab_json(args);
  if (!v.is_object() || !v.as_object().contains("token"))
    return {};
  return std::string(v.at("token").as_string());
}

JoinMaterial make_join_request(const std::string& token, const std::string& hostname) {
  auto key = cr::EcPrivateKey::generate().value();
  auto sealing = cr::X25519PrivateKey::generate().value();
  shared::protocol::JoinRequest r;
  r.token = token;
  r.csr_pem = cr::make_csr(key, hostname).value();
  const auto pub = sealing.public_key().raw();
  r.sealing_key = cr::base64url_encode(cr::ByteView(pub.data(), pub.size()));
  r.hostname = hostname;
  r.agent_version = "test";
  r.facts = {{"hostname", hostname}};
  return {std::move(key), std::move(sealing),
          shared::json::to_string(shared::protocol::to_json(r))};
}

Result<shared::http::ClientResponse> post_join(const Appliance& a, const std::string& body) {
  auto client = a.anonymous_client();
  return client.post_json("/v1/join", body);
}

std::optional<JoinedNode> join(const Appliance& a, const std::string& token,
                               const std::string& hostname) {
  auto m = make_join_request(token, hostname);
  auto r = post_join(a, m.body);
  if (!r) {
    ADD_FAILURE() << "join: " << r.error().message();
    return std::nullopt;
  }
  if (r->status != 200) {
    ADD_FAILURE() << "join: HTTP " << r->status << " " << r->body;
    return std::nullopt;
  }
  auto o = shared::json::parse_object(r->body);
  auto resp = o ? shared::protocol::join_response_from_json(*o)
                : Result<shared::protocol::JoinResponse>(o.error());
  if (!resp) {
    ADD_FAILURE() << "join answer: " << r->body;
    return std::nullopt;
  }
  return JoinedNode{resp->node_id,    resp->name,           resp->state,          resp->bundle_key,
                    std::move(m.key), std::move(m.sealing), resp->certificate_pem};
}

shared::http::Client node_client(const Appliance& a, const JoinedNode& node,
                                 std::chrono::milliseconds timeout) {
  shared::http::ClientOptions o;
  o.base_url = a.url();
  o.ca_pem = a.ca_pem();
  o.connect_timeout = kConnectTimeout;
  o.client_cert_pem = node.certificate_pem;
  o.client_key_pem = node.key.to_pem();
  o.timeout = timeout;
  return shared::http::Client(std::move(o));
}

std::pair<std::filesystem::path, std::filesystem::path> write_client_pem(
    const Appliance& a, const std::string& name, const std::string& cert_pem,
    const std::string& key_pem) {
  return {a.dir().write(name + ".crt", cert_pem), a.dir().write(name + ".key", key_pem)};
}

}  // namespace lab::tests::coordinator
