#include "tests/unit/agent/fake_coordinator.hpp"

#include "shared/crypto/encoding.hpp"
#include "shared/crypto/x509.hpp"
#include "shared/envelope/envelope.hpp"
#include "shared/http/server/server.hpp"
#include "shared/json/json.hpp"
#include "tests/support/process.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <future>
#include <set>
#include <stdexcept>

namespace lab::tests {

namespace crypto = shared::crypto;
namespace http = shared::http;
namespace protocol = shared::protocol;

struct FakeCoordinator::Impl {
  FakeCoordinator& owner;
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard{io.get_executor()};
  std::unique_ptr<http::Server> server;
  std::thread thread;

  mutable std::mutex mutex;
  std::condition_variable changed;
  bool stopping = false;
  std::set<std::string> tokens;  // unused tokens
  std::string node_id;
  std::optional<crypto::X25519PublicKey> sealing_key;
  std::map<std::int64_t, crypto::Bytes> envelopes;
  std::int64_t revision = 0;
  std::int64_t acknowledged = 0;  // the highest `since` an agent asked with
  std::string last_join_proof = "none";
  std::vector<std::thread> waiters;

  void start_server(std::uint16_t port) {
    server = std::make_unique<http::Server>(
        io, [this](const http::Request& req, const http::Reply& reply) { handle(req, reply); });
    http::TlsConfig tls;
    tls.certificate_chain_pem = owner.pki_.server.pem() + owner.pki_.ca.pem();
    tls.private_key_pem = owner.pki_.server_key.to_pem();
    tls.client_ca_pem = owner.pki_.ca.pem();
    auto bound = server->listen_tcp("127.0.0.1", port, tls);
    if (!bound)
      throw std::runtime_error("fake coordinator: " + bound.error().message());
    owner.port_ = *bound;
  }

  // Stops the listener; long-polls in flight end (204) so the server can finish.
  void stop_server() {
    std::vector<std::thread> held;
    {
      const std::lock_guard lock(mutex);
      stopping = true;
      held.swap(waiters);
    }
    changed.notify_all();
    for (auto& t : held)
      t.join();
    std::promise<void> done;
    boost::asio::post(io, [&] { server->stop([&] { done.set_value(); }); });
    done.get_future().wait_for(std::chrono::seconds(5));
    std::promise<void> destroyed;
    boost::asio::post(io, [&] {
      server.reset();
      destroyed.set_value();
    });
    destroyed.get_future().wait();
  }

  explicit Impl(FakeCoordinator& o) : owner(o) {}

  crypto::Certificate issue(std::string_view csr_pem) {
    auto info = crypto::verify_csr(csr_pem).value();
    const auto now = std::chrono::system_clock::now();
    return crypto::issue_certificate(owner.pki_.ca_key, owner.pki_.ca, info.public_key_der,
                                     {.common_name = info.common_name,
                                      .dns_names = {},
                                      .ip_addresses = {},
                                      .not_before = now - std::chrono::seconds(1),
                                      .not_after = now + owner.lifetime_.load(),
                                      .usage = crypto::CertUsage::client})
        .value();
  }

  void handle(const http::Request& req, const http::Reply& reply) {
    if (req.method == "POST" && req.path == "/v1/join")
      return reply(join(req));
    if (req.method == "POST" && req.path == "/v1/renew")
      return reply(renew_with_proof(req));
    if (req.path.starts_with("/v1/agent/")) {
      if (!req.peer.client_cert || !req.peer.client_cert->verified)
        return reply(http::Response::error(401, "client certificate required"));
      if (owner.revoked_)
        return reply(http::Response::error(403, "revoked"));
      if (req.method == "POST" && req.path == "/v1/agent/renew")
        return reply(renew(req));
      if (req.method == "GET" && req.path == "/v1/agent/bundle")
        return bundle(req, reply);
      if (req.method == "POST" && req.path == "/v1/agent/report") {
        ++owner.reports_;
        if (owner.limit_reports_) {
          auto r = http::Response::json(
              429, R"({"error":"node reports too often","code":"rate_limited"})");
          if (const int after = owner.report_retry_after_.load(); after > 0)
            r.headers.set("Retry-After", std::to_string(after));
          return reply(std::move(r));
        }
        return reply(http::Response{204, {}, {}, {}, false});
      }
    }
    reply(http::Response::error(404, "not found"));
  }

  http::Response join(const http::Request& req) {
    auto o = shared::json::parse_object(req.body);
    if (!o)
      return http::Response::error(400, "bad json");
    auto jr = protocol::join_request_from_json(*o);
    if (!jr)
      return http::Response::error(400, "bad join request");
    const std::lock_guard lock(mutex);
    if (tokens.erase(jr->token) == 0)
      return http::Response::json(403, R"({"error":"invalid token","code":"invalid_token"})");
    last_join_proof = "none";
    if (jr->proof) {
      const auto token = protocol::parse_token(jr->token).value();
      last_join_proof =
          proof_verifies(*jr->proof, protocol::key_proof_message("join", token.id, jr->csr_pem))
              ? "valid"
              : "invalid";
    }
    auto raw = crypto::base64url_decode(jr->sealing_key).value();
    sealing_key = crypto::X25519PublicKey::from_raw(raw).value();
    node_id = fmt::format("n-{:04}", ++owner.joins_);
    protocol::JoinResponse resp;
    resp.node_id = node_id;
    resp.name = jr->hostname.empty() ? node_id : jr->hostname;
    resp.certificate_pem = issue(jr->csr_pem).pem();
    resp.ca_pem = owner.pki_.ca.pem();
    resp.bundle_key = crypto::base64url_encode(owner.bundle_key_.public_key().raw());
    resp.state = "enrolled";
    envelopes.clear();
    revision = 0;
    return http::Response::json(200, boost::json::serialize(protocol::to_json(resp)));
  }

  http::Response renew(const http::Request& req) {
    auto o = shared::json::parse_object(req.body);
    if (!o)
      return http::Response::error(400, "bad json");
    auto csr = shared::json::get_string(*o, "csr");
    if (!csr || !crypto::verify_csr(*csr))
      return http::Response::error(400, "bad csr");
    ++owner.renewals_;
    boost::json::object out;
    out["certificate"] = issue(*csr).pem();
    return http::Response::json(200, boost::json::serialize(out));
  }

  // The proof's signature verifies with its certificate's key, and the certificate is ours
  // (at a moment it was valid: it may have expired since).
  bool proof_verifies(const protocol::KeyProof& proof, std::string_view message) const {
    auto cert = crypto::Certificate::from_pem(proof.certificate_pem);
    auto sig = crypto::base64url_decode(proof.signature);
    return cert && sig &&
           crypto::verify_ecdsa(cert->public_key_der(), crypto::as_bytes(message), *sig) &&
           crypto::verify_certificate(*cert, owner.pki_.ca,
                                      std::min(std::chrono::system_clock::now(),
                                               cert->not_after() - std::chrono::seconds(1)));
  }

  // POST /v1/renew: no client certificate needed, a key proof over the new CSR instead.
  http::Response renew_with_proof(const http::Request& req) {
    ++owner.proof_renewals_;
    if (req.peer.client_cert)
      ++owner.proof_renewals_with_client_cert_;
    auto o = shared::json::parse_object(req.body);
    if (!o)
      return http::Response::error(400, "bad json");
    auto rr = protocol::renew_request_from_json(*o);
    if (!rr || !rr->proof || !crypto::verify_csr(rr->csr_pem))
      return http::Response::error(400, "bad renew request");
    if (!proof_verifies(*rr->proof, protocol::key_proof_message("renew", "", rr->csr_pem)))
      return http::Response::json(403,
                                  R"({"error":"proof does not verify","code":"invalid_proof"})");
    if (owner.revoked_)
      return http::Response::json(403, R"({"error":"forbidden","code":"forbidden"})");
    const auto cert = crypto::Certificate::from_pem(rr->proof->certificate_pem).value();
    if (std::chrono::system_clock::now() > cert.not_after() + owner.grace_.load()) {
      return http::Response::json(
          403, R"json({"error":"certificate expired longer ago than the renewal grace: join )json"
               R"json(again with a new token ('labd rejoin')","code":"renew_grace_passed"})json");
    }
    boost::json::object out;
    out["certificate"] = issue(rr->csr_pem).pem();
    return http::Response::json(200, boost::json::serialize(out));
  }

  // Answers with the newest envelope when it is newer than `since`, else holds the request
  // up to `wait` seconds on a thread of its own (the server lets a handler reply later).
  void bundle(const http::Request& req, const http::Reply& reply) {
    ++owner.bundle_requests_;
    const std::int64_t since =
        std::atoll(std::string(req.query_param("since").value_or("0")).c_str());
    std::int64_t wait = std::atoll(std::string(req.query_param("wait").value_or("55")).c_str());
    wait = std::min<std::int64_t>(wait, owner.max_wait_.load().count());
    std::unique_lock lock(mutex);
    acknowledged = std::max(acknowledged, since);
    if (stopping)
      return reply(http::Response::error(503, "shutting down"));
    if (revision > since || since == 0) {
      if (revision == 0)
        return reply(http::Response{204, {}, {}, {}, false});
      return reply(served(revision));
    }
    waiters.emplace_back([this, since, wait, reply] {
      std::unique_lock l(mutex);
      changed.wait_for(l, std::chrono::seconds(wait), [&] { return stopping || revision > since; });
      if (revision > since && !stopping) {
        auto r = served(revision);
        l.unlock();
        reply(std::move(r));
      } else {
        l.unlock();
        reply(http::Response{204, {}, {}, {}, false});
      }
    });
  }

  http::Response served(std::int64_t rev) const {
    http::Response r;
    r.status = 200;
    r.headers.set("Content-Type", "application/octet-stream");
    r.headers.set("Lab-Revision", std::to_string(rev));
    const auto& env = envelopes.at(rev);
    r.body.assign(env.begin(), env.end());
    return r;
  }
};

FakeCoordinator::FakeCoordinator(std::uint16_t port)
    : bundle_key_(crypto::Ed25519PrivateKey::generate().value()),
      impl_(std::make_unique<Impl>(*this)) {
  impl_->start_server(port);
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

void FakeCoordinator::pause() {
  impl_->stop_server();
}

void FakeCoordinator::resume() {
  {
    const std::lock_guard lock(impl_->mutex);
    impl_->stopping = false;
  }
  std::promise<std::string> done;
  boost::asio::post(impl_->io, [&] {
    try {
      impl_->start_server(port_);
      done.set_value({});
    } catch (const std::exception& e) {
      done.set_value(e.what());
    }
  });
  if (auto failed = done.get_future().get(); !failed.empty())
    throw std::runtime_error(failed + "\n" +
                             sh("ss -tanpo | grep :" + std::to_string(port_)).output);
}

std::int64_t FakeCoordinator::acknowledged() const {
  const std::lock_guard lock(impl_->mutex);
  return impl_->acknowledged;
}

FakeCoordinator::~FakeCoordinator() {
  if (impl_->server)
    impl_->stop_server();
  impl_->guard.reset();
  impl_->io.stop();
  impl_->thread.join();
}

std::string FakeCoordinator::url() const {
  return fmt::format("https://127.0.0.1:{}", port_);
}

std::string FakeCoordinator::join_string() {
  auto token = protocol::make_token().value();
  {
    const std::lock_guard lock(impl_->mutex);
    impl_->tokens.insert(token.to_string());
  }
  return protocol::format_join_string({url(), token, crypto::spki_pin(pki_.ca.public_key_der())});
}

std::string FakeCoordinator::join_string_with_wrong_pin() {
  const TestPki other("another CA");
  auto token = protocol::make_token().value();
  {
    const std::lock_guard lock(impl_->mutex);
    impl_->tokens.insert(token.to_string());
  }
  return protocol::format_join_string({url(), token, crypto::spki_pin(other.ca.public_key_der())});
}

std::string FakeCoordinator::join_string_with_unknown_token() {
  return protocol::format_join_string(
      {url(), protocol::make_token().value(), crypto::spki_pin(pki_.ca.public_key_der())});
}

std::int64_t FakeCoordinator::publish(const shared::labels::LabelSet& labels,
                                      const std::map<std::string, std::string>& secrets) {
  std::int64_t rev = 0;
  {
    const std::lock_guard lock(impl_->mutex);
    if (!impl_->sealing_key)
      throw std::logic_error("fake coordinator: publish before any join");
    rev = impl_->revision + 1;
    protocol::Bundle b;
    b.node_id = impl_->node_id;
    b.name = impl_->node_id;
    b.revision = rev;
    b.issued_at = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    b.state = "ready";
    b.labels = labels;
    for (const auto& [name, value] : secrets) {
      const auto aad = protocol::sealed_secret_aad(b.node_id, name, rev);
      auto sealed =
          crypto::seal(*impl_->sealing_key, crypto::as_bytes(value), crypto::as_bytes(aad)).value();
      b.secrets.push_back({name, rev, crypto::base64url_encode(sealed)});
    }
    const std::string payload = protocol::serialize(b);
    impl_->envelopes[rev] =
        shared::envelope::seal(bundle_key_, protocol::kBundleKind, crypto::as_bytes(payload))
            .value();
    impl_->revision = rev;
  }
  impl_->changed.notify_all();
  return rev;
}

std::vector<std::uint8_t> FakeCoordinator::envelope(std::int64_t revision) const {
  const std::lock_guard lock(impl_->mutex);
  return impl_->envelopes.at(revision);
}

std::int64_t FakeCoordinator::revision() const {
  const std::lock_guard lock(impl_->mutex);
  return impl_->revision;
}

std::string FakeCoordinator::last_join_proof() const {
  const std::lock_guard lock(impl_->mutex);
  return impl_->last_join_proof;
}

std::string FakeCoordinator::node_id() const {
  const std::lock_guard lock(impl_->mutex);
  return impl_->node_id;
}

}  // namespace lab::tests
