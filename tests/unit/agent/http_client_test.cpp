// The agent's HTTP client (shared/http/beast_client) against the real shared/http server, as
// labd uses it: TLS trusting one CA from memory, a CA picked from the server's chain by a pin
// before anything is sent, a client certificate from memory, kept-alive connections, unix
// sockets, deadlines and body limits.
#include "shared/crypto/x509.hpp"
#include "shared/http/beast_client/client.hpp"
#include "shared/http/server/server.hpp"
#include "tests/support/pki.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <thread>

namespace {

using namespace std::chrono_literals;
namespace http = lab::shared::http;
namespace crypto = lab::shared::crypto;
using lab::tests::TempDir;
using lab::tests::TestPki;

class HttpClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    release_held();
    if (server_) {
      std::promise<void> stopped;
      boost::asio::post(io_, [&] { server_->stop([&] { stopped.set_value(); }); });
      stopped.get_future().wait_for(10s);
    }
    guard_.reset();
    io_.stop();
    thread_.join();
  }

  // Starts a server whose handler answers with handler_ (or holds the request when it is null).
  void start(std::optional<http::TlsConfig> tls, const std::string& address = "127.0.0.1",
             http::Limits limits = {}) {
    std::promise<std::uint16_t> bound;
    boost::asio::post(io_, [&] {
      server_ = std::make_unique<http::Server>(
          io_,
          [this](const http::Request& req, const http::Reply& reply) {
            {
              const std::lock_guard lock(mutex_);
              last_ = req;
              if (hold_) {
                held_.push_back(reply);
                return;
              }
            }
            reply(answer_(req));
          },
          limits);
      auto p = server_->listen_tcp(address, 0, std::move(tls));
      bound.set_value(p ? *p : 0);
    });
    port_ = bound.get_future().get();
    ASSERT_NE(port_, 0);
  }

  void start_unix(const std::filesystem::path& path) {
    std::promise<bool> bound;
    boost::asio::post(io_, [&] {
      server_ = std::make_unique<http::Server>(
          io_, [this](const http::Request& req, const http::Reply& reply) {
            {
              const std::lock_guard lock(mutex_);
              last_ = req;
            }
            reply(answer_(req));
          });
      bound.set_value(static_cast<bool>(server_->listen_unix(path)));
    });
    ASSERT_TRUE(bound.get_future().get());
  }

  http::TlsConfig tls_config(bool with_ca_in_chain = true) const {
    http::TlsConfig t;
    t.certificate_chain_pem = pki_.server.pem() + (with_ca_in_chain ? pki_.ca.pem() : "");
    t.private_key_pem = pki_.server_key.to_pem();
    t.client_ca_pem = pki_.ca.pem();
    return t;
  }

  [[nodiscard]] std::string url(const std::string& host = "127.0.0.1") const {
    return "https://" + host + ":" + std::to_string(port_);
  }

  http::ServerStats stats() {
    std::promise<http::ServerStats> s;
    boost::asio::post(io_, [&] { s.set_value(server_->stats()); });
    return s.get_future().get();
  }

  http::Request last() {
    const std::lock_guard lock(mutex_);
    return last_;
  }

  void release_held() {
    std::vector<http::Reply> held;
    {
      const std::lock_guard lock(mutex_);
      hold_ = false;
      held.swap(held_);
    }
    for (auto& r : held)
      r(http::Response::text(204, ""));
  }

  TestPki pki_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_{
      io_.get_executor()};
  std::thread thread_;
  std::unique_ptr<http::Server> server_;
  std::uint16_t port_ = 0;
  std::function<http::Response(const http::Request&)> answer_ = [](const http::Request& r) {
    return http::Response::text(200, r.method + " " + r.target + " " + r.body);
  };
  std::mutex mutex_;
  http::Request last_;
  bool hold_ = false;
  std::vector<http::Reply> held_;
};

TEST_F(HttpClientTest, TrustsOnlyTheGivenCaAndKeepsTheConnection) {
  start(tls_config());
  http::BeastClientOptions o;
  o.base_url = url();
  o.ca_pem = pki_.ca.pem();
  http::BeastClient c(o);
  auto r = c.get("/v1/a?x=1");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->status, 200U);
  EXPECT_EQ(r->body, "GET /v1/a?x=1 ");
  EXPECT_EQ(r->headers.get("content-type").value_or(""), "text/plain; charset=utf-8");
  auto p = c.post_json("/v1/b", R"({"k":1})");
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->body, R"(POST /v1/b {"k":1})");
  EXPECT_EQ(last().header("content-type").value_or(""), "application/json");
  EXPECT_EQ(stats().connections_total, 1U);  // both requests on one connection
  EXPECT_EQ(c.trusted_ca_pem(), pki_.ca.pem());

  const TestPki other("another CA");
  o.ca_pem = other.ca.pem();
  auto refused = http::BeastClient(o).get("/");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), http::BeastClientError::tls_verify) << refused.error().message();
  EXPECT_EQ(stats().requests_total, 2U);
}

TEST_F(HttpClientTest, RefusesACertificateForAnotherAddress) {
  start(tls_config(), "127.0.0.2");  // the certificate names localhost and 127.0.0.1 only
  http::BeastClientOptions o;
  o.base_url = url("127.0.0.2");
  o.ca_pem = pki_.ca.pem();
  auto r = http::BeastClient(o).get("/");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), http::BeastClientError::tls_verify) << r.error().message();

  o.ca_pem.clear();
  o.choose_ca = [&](const std::vector<std::string>&) -> lab::Result<std::string> {
    return pki_.ca.pem();
  };
  auto chosen = http::BeastClient(o).get("/");
  ASSERT_FALSE(chosen);
  EXPECT_EQ(chosen.error(), http::BeastClientError::tls_verify) << chosen.error().message();
  EXPECT_EQ(stats().requests_total, 0U);
}

TEST_F(HttpClientTest, ChoosesTheCaFromTheChainBeforeSendingAnything) {
  start(tls_config());
  std::vector<std::string> seen;
  http::BeastClientOptions o;
  o.base_url = url("localhost");
  o.choose_ca = [&](const std::vector<std::string>& chain) -> lab::Result<std::string> {
    seen = chain;
    return chain.back();
  };
  http::BeastClient c(o);
  auto r = c.post_json("/v1/join", "{}");
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(seen.size(), 2U);
  EXPECT_EQ(crypto::Certificate::from_pem(seen[0])->public_key_der(), pki_.server.public_key_der());
  EXPECT_EQ(crypto::Certificate::from_pem(seen[1])->public_key_der(), pki_.ca.public_key_der());
  EXPECT_EQ(crypto::Certificate::from_pem(c.trusted_ca_pem())->public_key_der(),
            pki_.ca.public_key_der());
  // The next connection verifies against the chosen CA in the TLS layer.
  c.close();
  seen.clear();
  ASSERT_TRUE(c.get("/again"));
  EXPECT_TRUE(seen.empty());

  // A refusal comes back unchanged, and the request never reaches the server.
  const auto requests = stats().requests_total;
  o.choose_ca = [](const std::vector<std::string>&) -> lab::Result<std::string> {
    return lab::Error(http::BeastClientError::bad_url, "no certificate matches the pin");
  };
  auto refused = http::BeastClient(o).post_json("/v1/join", "{\"token\":\"x\"}");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().detail(), "no certificate matches the pin");
  EXPECT_EQ(stats().requests_total, requests);

  // A chosen certificate the server's certificate does not chain to.
  const TestPki other("another CA");
  o.choose_ca = [&](const std::vector<std::string>&) -> lab::Result<std::string> {
    return other.ca.pem();
  };
  auto foreign = http::BeastClient(o).get("/");
  ASSERT_FALSE(foreign);
  EXPECT_EQ(foreign.error(), http::BeastClientError::tls_verify);
  EXPECT_EQ(stats().requests_total, requests);
}

TEST_F(HttpClientTest, PresentsTheClientCertificateFromMemory) {
  start(tls_config());
  const auto key = crypto::EcPrivateKey::generate().value();
  const auto cert = pki_.issue(key, "node-1", crypto::CertUsage::client);
  http::BeastClientOptions o;
  o.base_url = url();
  o.ca_pem = pki_.ca.pem();
  o.client_cert_pem = cert.pem();
  o.client_key_pem = key.to_pem();
  ASSERT_TRUE(http::BeastClient(o).get("/v1/agent/bundle"));
  ASSERT_TRUE(last().peer.client_cert);
  EXPECT_TRUE(last().peer.client_cert->verified);
  EXPECT_EQ(last().peer.client_cert->serial, cert.serial());

  o.client_key_pem = crypto::EcPrivateKey::generate().value().to_pem();  // not the cert's key
  auto mismatch = http::BeastClient(o).get("/");
  ASSERT_FALSE(mismatch);
  EXPECT_EQ(mismatch.error(), http::BeastClientError::tls_setup);
}

TEST_F(HttpClientTest, ReconnectsOnceWhenTheServerClosedTheKeptConnection) {
  http::Limits limits;
  limits.read_timeout = 300ms;  // the server closes idle kept-alive connections after this
  start(tls_config(), "127.0.0.1", limits);
  http::BeastClientOptions o;
  o.base_url = url();
  o.ca_pem = pki_.ca.pem();
  http::BeastClient c(o);
  ASSERT_TRUE(c.get("/one"));
  ASSERT_TRUE(lab::tests::wait_until([&] { return stats().connections_open == 0; }, 10s));
  auto r = c.get("/two");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->body, "GET /two ");
  EXPECT_EQ(stats().connections_total, 2U);
}

TEST_F(HttpClientTest, DeadlinesAndLimitsEndTheRequest) {
  start(tls_config());
  http::BeastClientOptions o;
  o.base_url = url();
  o.ca_pem = pki_.ca.pem();
  o.timeout = 500ms;
  {
    const std::lock_guard lock(mutex_);
    hold_ = true;  // a long-poll that never answers within the client's deadline
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto held = http::BeastClient(o).get("/v1/agent/bundle?since=1&wait=55");
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(held);
  EXPECT_EQ(held.error(), http::BeastClientError::timeout);
  EXPECT_GE(took, 450ms);
  EXPECT_LT(took, 5s);
  release_held();

  answer_ = [](const http::Request&) { return http::Response::text(200, std::string(4096, 'x')); };
  o.timeout = 10s;
  o.max_body = 1000;
  auto big = http::BeastClient(o).get("/");
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error(), http::BeastClientError::too_large);
  o.max_body = 4096;
  auto fits = http::BeastClient(o).get("/");
  ASSERT_TRUE(fits) << fits.error().message();
  EXPECT_EQ(fits->body.size(), 4096U);
}

TEST_F(HttpClientTest, NamesTheFailureWhenNothingListensOrTheUrlIsBad) {
  // A port that was just free: connection refused.
  boost::asio::ip::tcp::acceptor probe(io_, {boost::asio::ip::make_address("127.0.0.1"), 0});
  const auto port = probe.local_endpoint().port();
  probe.close();
  http::BeastClientOptions o;
  o.base_url = "https://127.0.0.1:" + std::to_string(port);
  o.ca_pem = pki_.ca.pem();
  auto refused = http::BeastClient(o).get("/");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), http::BeastClientError::connect_failed) << refused.error().message();

  for (const char* bad :
       {"ftp://x", "https://", "https://h:0", "https://h:99999", "https://[::1"}) {
    o.base_url = bad;
    auto r = http::BeastClient(o).get("/");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error(), http::BeastClientError::bad_url) << bad;
  }
  o.base_url = "https://host.invalid:8443";
  auto unresolved = http::BeastClient(o).get("/");
  ASSERT_FALSE(unresolved);
  EXPECT_EQ(unresolved.error(), http::BeastClientError::resolve_failed)
      << unresolved.error().message();
}

TEST_F(HttpClientTest, TalksHttpOverAUnixSocket) {
  const TempDir dir("http-client");
  const auto path = dir / "api.sock";
  start_unix(path);
  http::BeastClientOptions o;
  o.base_url = "http://localhost";
  o.unix_socket = path.string();
  http::BeastClient c(o);
  auto r = c.get("/v1/labels");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->body, "GET /v1/labels ");
  ASSERT_TRUE(last().peer.credentials);
  EXPECT_EQ(last().peer.credentials->pid, ::getpid());

  o.unix_socket = (dir / "nobody.sock").string();
  auto missing = http::BeastClient(o).get("/");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), http::BeastClientError::connect_failed);
}

}  // namespace
