// The HTTP server and client against each other, and against curl and raw sockets, on loopback.
#include "shared/http/server/server.hpp"

#include "shared/crypto/x509.hpp"
#include "shared/http/client/client.hpp"
#include "tests/support/pki.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <mutex>
#include <random>
#include <thread>

namespace {

using namespace lab::shared::http;
using namespace std::chrono_literals;
namespace crypto = lab::shared::crypto;

// Runs an io_context on a background thread for the life of the test.
class IoThread {
 public:
  IoThread() : guard_(io_.get_executor()), thread_([this] { io_.run(); }) {}
  ~IoThread() {
    guard_.reset();
    io_.stop();
    thread_.join();
  }
  boost::asio::io_context& io() { return io_; }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::thread thread_;
};

// Echoes what it saw as JSON-ish text so tests can check parsing.
Handler echo_handler() {
  return [](const Request& req, const Reply& reply) {
    std::string out = req.method + " " + req.path;
    for (const auto& [k, v] : req.query)
      out += fmt::format(" q:{}={}", k, v);
    if (auto h = req.header("X-Test"))
      out += " h:" + std::string(*h);
    out += " body:" + std::to_string(req.body.size());
    reply(Response::text(200, out));
  };
}

// A raw TCP connection for sending malformed or slow requests.
class RawSocket {
 public:
  explicit RawSocket(std::uint16_t port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    timeval tv{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;
  ~RawSocket() { close(fd_); }
  bool connected() const { return connected_; }
  void send_text(std::string_view s) { (void)::send(fd_, s.data(), s.size(), MSG_NOSIGNAL); }
  // Reads until the peer closes or the receive timeout passes.
  std::string read_all() {
    std::string out;
    char buf[4096];
    for (;;) {
      const ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0)
        break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }

 private:
  int fd_;
  bool connected_ = false;
};

ClientOptions plain(std::uint16_t port) {
  ClientOptions o;
  o.base_url = "http://127.0.0.1:" + std::to_string(port);
  return o;
}

TEST(HttpServer, ParsesMethodPathQueryHeadersAndBody) {
  IoThread io;
  Server server(io.io(), echo_handler());
  const auto port = server.listen_tcp("127.0.0.1", 0).value();
  Client client(plain(port));
  Headers h;
  h.set("X-Test", "yes");
  auto r = client.request("POST", "/v1/a%20b?since=7&x=a+b&empty", "hello", "text/plain", h);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "POST /v1/a b q:since=7 q:x=a b q:empty= h:yes body:5");
  EXPECT_EQ(r->headers.get("content-type").value_or(""), "text/plain; charset=utf-8");
}

TEST(HttpServer, KeepAliveReusesOneConnection) {
  IoThread io;
  Server server(io.io(), echo_handler());
  const auto port = server.listen_tcp("127.0.0.1", 0).value();
  Client client(plain(port));
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(client.get("/x").value().status, 200);
  EXPECT_EQ(server.stats().connections_total, 1u);
  EXPECT_EQ(server.stats().requests_total, 5u);
}

TEST(HttpServer, OversizedBodyIs413AndServerKeepsServing) {
  IoThread io;
  Limits limits;
  limits.body_bytes = 1024;
  Server server(io.io(), echo_handler(), limits);
  const auto port = server.listen_tcp("127.0.0.1", 0).value();
  Client client(plain(port));
  auto big = client.request("POST", "/x", std::string(4096, 'a'), "text/plain");
  ASSERT_TRUE(big) << big.error().message();
  EXPECT_EQ(big->status, 413);
  EXPECT_NE(big->body.find("too large"), std::string::npos);
  Client other(plain(port));
  EXPECT_EQ(other.get("/ok").value().status, 200);
}

TEST(HttpServer, OversizedHeadersAre431) {
  IoThread io;
  Limits limits;
  limits.header_bytes = 2048;
  Server server(io.io(), echo_handler(), limits);
  const auto port = server.listen_tcp("127.0.0.1", 0).value();
  Headers h;
  h.set("X-Big", std::string(4096, 'b'));
  auto r = Client(plain(port)).request("GET", "/x", {}, {}, h);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
}

TEST(HttpServer, GarbageIs400) {
  IoThread io;
  Server server(io.io(), echo_handler());
  const auto port = server.listen_tcp("127.0.0.1", 0).value();
  for (std::string_view bad :
       {"GARBAGE\r\n\r\n", "GET /x HTTP/9.9\r\n\r\n",
        "GET /x HTTP/1.1\r\nContent-Length: -5\r\n\r\n", "GET x HTTP/1.1\r\nHost: a\r\n\r\n"}) {
    RawSocket s(port);
    ASSERT_TRUE(s.connected());
    s.send_text(bad);
    const std::string out = s.read_all();
    EXPECT_EQ(out.rfind("HTTP/1.1 400", 0), 0u) << bad << " → " << out;
  }
  EXPECT_EQ(Client(plain(port)).get("/still-up").value().status, 200);
}

TEST(HttpServer, SlowHeadersGet408WhileOthersAreServed) {
  IoThread io;
  Limits limits;
  limits.read_timeout = 400ms;
  Server server(io.io(), echo_handler(), limits);
  const auto port = server.listen_tcp("127.0.0.1", 0).value();
  RawSocket slow(port);
  slow.send_text("GET /slow HTTP/1.1\r\nHost: a\r\nX-Drip: ");
  // Others are served at once while the slow one dribbles.
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(Client(plain(port)).get("/fast").value().status, 200);
  const auto start = std::chrono::steady_clock::now();
  const std::string out = slow.read_all();
  EXPECT_EQ(out.rfind("HTTP/1.1 408", 0), 0u) << out;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST(HttpServer, IdleKeepAliveConnectionIsClosedSilently) {
  IoThread io;
  Limits limits;
  limits.read_timeout = 200ms;
  Server server(io.io(), echo_handler(), limits);
  const auto port = server.listen_tcp("127.0.0.1", 0).value();
  RawSocket idle(port);
  EXPECT_EQ(idle.read_all(), "");  // closed, no response
  EXPECT_TRUE(lab::tests::wait_until([&] { return server.stats().connections_open == 0; }, 2s));
}

TEST(HttpServer, ReplyMayComeLaterFromAnotherThread) {
  IoThread io;
  std::promise<Reply> parked;
  Server server(io.io(), [&](const Request&, Reply reply) { parked.set_value(std::move(reply)); });
  const auto port = server.listen_tcp("127.0.0.1", 0).value();
  auto answer = std::async(std::launch::async, [&] { return Client(plain(port)).get("/poll"); });
  Reply reply = parked.get_future().get();
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(answer.wait_for(0ms), std::future_status::timeout);  // still parked
  std::thread([r = std::move(reply)] { r(Response::json(200, "{\"rev\":8}")); }).join();
  auto r = answer.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "{\"rev\":8}");
}

TEST(HttpServer, ReplyCalledTwiceSendsOnlyTheFirst) {
  IoThread io;
  Server server(io.io(), [](const Request&, const Reply& reply) {
    reply(Response::text(200, "first"));
    reply(Response::text(500, "second"));
  });
  const auto port = server.listen_tcp("127.0.0.1", 0).value();
  Client c(plain(port));
  EXPECT_EQ(c.get("/").value().body, "first");
  EXPECT_EQ(c.get("/").value().body, "first");
}

TEST(HttpServer, DroppedReplyAndThrowingHandlerGive500) {
  IoThread io;
  Server server(io.io(), [](const Request& req, const Reply& reply) {
    if (req.path == "/throw")
      throw std::runtime_error("boom");
    (void)reply;  // dropped without a call
  });
  const auto port = server.listen_tcp("127.0.0.1", 0).value();
  Client c(plain(port));
  auto dropped = c.get("/drop");
  ASSERT_TRUE(dropped);
  EXPECT_EQ(dropped->status, 500);
  EXPECT_EQ(dropped->body, "{\"error\":\"internal error\"}");  // no detail leaked
  EXPECT_EQ(c.get("/throw").value().status, 500);
}

TEST(HttpServer, HeadHasLengthButNoBody) {
  IoThread io;
  Server server(io.io(), [](const Request&, const Reply& reply) {
    reply(Response::text(200, std::string(1000, 'x')));
  });
  const auto port = server.listen_tcp("127.0.0.1", 0).value();
  Client c(plain(port));
  auto head = c.request("HEAD", "/f");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->headers.get("Content-Length").value_or(""), "1000");
  EXPECT_TRUE(head->body.empty());
  EXPECT_EQ(c.get("/f").value().body.size(), 1000u);  // the connection is still in sync
}

std::string random_content(std::size_t n) {
  std::mt19937 rng(42);
  std::string s(n, '\0');
  for (auto& c : s)
    c = static_cast<char>(rng());
  return s;
}

Handler file_handler(const std::filesystem::path& path) {
  return [path](const Request& req, const Reply& reply) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    auto file = std::make_shared<const File>(fd);
    const auto size = std::filesystem::file_size(path);
    Response r;
    std::uint64_t offset = 0;
    std::uint64_t length = size;
    if (auto o = req.query_param("offset"))
      offset = std::stoull(std::string(*o));
    if (auto l = req.query_param("length"))
      length = std::stoull(std::string(*l));
    r.file = FileBody{file, offset, length};
    reply(std::move(r));
  };
}

TEST(HttpServer, FileBodiesAreByteIdenticalWholeAndInPart) {
  lab::tests::TempDir dir;
  const std::string content = random_content(std::size_t{12} * 1024 * 1024 + 17);
  const auto path = dir.write("blob", content);
  IoThread io;
  Server server(io.io(), file_handler(path));
  const auto port = server.listen_tcp("127.0.0.1", 0).value();
  Client c(plain(port));
  auto whole = c.get("/blob");
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->body.size(), content.size());
  EXPECT_TRUE(whole->body == content);
  auto part = c.get("/blob?offset=1000&length=5000");
  ASSERT_TRUE(part);
  EXPECT_TRUE(part->body == content.substr(1000, 5000));
  // curl as an independent client, with its own reading pace.
  auto out = dir / "out";
  auto r = lab::tests::run(
      {"curl", "-sS", "-o", out.string(), "http://127.0.0.1:" + std::to_string(port) + "/blob"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(lab::tests::read_file(out) == content);
}

// ---- TLS ------------------------------------------------------------------------------------

using lab::tests::TestPki;

TlsConfig tls_of(const TestPki& pki) {
  return {pki.server.pem() + pki.ca.pem(), pki.server_key.to_pem(), pki.ca.pem()};
}

Handler whoami_handler() {
  return [](const Request& req, const Reply& reply) {
    const auto& cert = req.peer.client_cert;
    std::string who = !cert            ? "anonymous"
                      : cert->verified ? "verified " + cert->common_name + " " + cert->serial
                                       : "unverified " + cert->common_name;
    reply(Response::text(200, who));
  };
}

TEST(HttpServerTls, ClientVerifiesServerAgainstTheCaItWasGiven) {
  TestPki pki;
  IoThread io;
  Server server(io.io(), whoami_handler());
  const auto port = server.listen_tcp("127.0.0.1", 0, tls_of(pki)).value();
  ClientOptions o;
  o.base_url = "https://127.0.0.1:" + std::to_string(port);
  o.ca_pem = pki.ca.pem();
  auto r = Client(o).get("/");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->body, "anonymous");

  TestPki other("other CA");
  o.ca_pem = other.ca.pem();
  auto refused = Client(o).get("/");
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error() == ClientError::tls_failed) << refused.error().message();
}

TEST(HttpServerTls, ClientCertificatesAreReportedVerifiedOrNot) {
  TestPki pki;
  IoThread io;
  Server server(io.io(), whoami_handler());
  const auto port = server.listen_tcp("127.0.0.1", 0, tls_of(pki)).value();
  ClientOptions o;
  o.base_url = "https://127.0.0.1:" + std::to_string(port);
  o.ca_pem = pki.ca.pem();
  auto node_key = crypto::EcPrivateKey::generate().value();
  const auto cert = pki.issue(node_key, "node-1", crypto::CertUsage::client);
  o.client_cert_pem = cert.pem();
  o.client_key_pem = node_key.to_pem();
  // The handler sees the certificate's subject and serial as the TLS layer read them.
  EXPECT_EQ(Client(o).get("/").value().body, "verified node-1 " + cert.serial());

  TestPki stranger("stranger CA");
  auto k2 = crypto::EcPrivateKey::generate().value();
  o.client_cert_pem = stranger.issue(k2, "node-x", crypto::CertUsage::client).pem();
  o.client_key_pem = k2.to_pem();
  EXPECT_EQ(Client(o).get("/").value().body, "unverified node-x");
}

TEST(HttpServerTls, FileBodiesOverTls) {
  TestPki pki;
  lab::tests::TempDir dir;
  const std::string content = random_content(std::size_t{3} * 1024 * 1024 + 5);
  const auto path = dir.write("blob", content);
  IoThread io;
  Server server(io.io(), file_handler(path));
  const auto port = server.listen_tcp("127.0.0.1", 0, tls_of(pki)).value();
  ClientOptions o;
  o.base_url = "https://127.0.0.1:" + std::to_string(port);
  o.ca_pem = pki.ca.pem();
  auto r = Client(o).get("/blob");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(r->body == content);
}

TEST(HttpServerTls, PeerChainIsAvailableBeforeTrust) {
  TestPki pki;
  IoThread io;
  Server server(io.io(), whoami_handler());
  const auto port = server.listen_tcp("127.0.0.1", 0, tls_of(pki)).value();
  ClientOptions o;
  o.base_url = "https://127.0.0.1:" + std::to_string(port);
  Client c(o);
  auto chain = c.peer_chain("/");
  ASSERT_TRUE(chain) << chain.error().message();
  ASSERT_EQ(chain->size(), 2u);
  auto ca = crypto::Certificate::from_pem((*chain)[1]).value();
  EXPECT_EQ(crypto::spki_pin(ca.public_key_der()), crypto::spki_pin(pki.ca.public_key_der()));
}

ClientOptions tls_client(const TestPki& pki, std::uint16_t port) {
  ClientOptions o;
  o.base_url = "https://127.0.0.1:" + std::to_string(port);
  o.ca_pem = pki.ca.pem();
  return o;
}

TEST(HttpServerTls, KeepAliveCarriesLargeBodiesBothWaysOnOneConnection) {
  TestPki pki;
  IoThread io;
  Limits limits;
  limits.body_bytes = std::size_t{4} * 1024 * 1024;
  // Answers with the request body reversed: many TLS records in, many out.
  Server server(
      io.io(),
      [](const Request& req, const Reply& reply) {
        reply(Response::text(200, std::string(req.body.rbegin(), req.body.rend())));
      },
      limits);
  const auto port = server.listen_tcp("127.0.0.1", 0, tls_of(pki)).value();
  Client client(tls_client(pki, port));
  for (const std::size_t size : {std::size_t{1}, std::size_t{700} * 1024 + 3, std::size_t{17000}}) {
    const std::string body = random_content(size);
    auto r = client.request("POST", "/x", body, "application/octet-stream");
    ASSERT_TRUE(r) << r.error().message();
    ASSERT_EQ(r->status, 200);
    EXPECT_TRUE(r->body == std::string(body.rbegin(), body.rend())) << size;
  }
  EXPECT_EQ(server.stats().connections_total, 1u);
  EXPECT_EQ(server.stats().requests_total, 3u);
}

TEST(HttpServerTls, ParkedRequestsAreAnsweredLaterFromAnotherThread) {
  TestPki pki;
  IoThread io;
  std::mutex mu;
  std::vector<Reply> parked;
  Server server(io.io(), [&](const Request& req, const Reply& reply) {
    const std::lock_guard lock(mu);
    parked.push_back(reply);
    (void)req;
  });
  const auto port = server.listen_tcp("127.0.0.1", 0, tls_of(pki)).value();
  constexpr int kClients = 20;
  std::vector<std::future<lab::Result<ClientResponse>>> answers;
  answers.reserve(kClients);
  for (int i = 0; i < kClients; ++i) {
    answers.push_back(std::async(std::launch::async, [&, i] {
      return Client(tls_client(pki, port)).get("/wait/" + std::to_string(i));
    }));
  }
  ASSERT_TRUE(lab::tests::wait_until(
      [&] {
        const std::lock_guard lock(mu);
        return parked.size() == kClients;
      },
      10s));
  std::thread([&] {
    const std::lock_guard lock(mu);
    for (auto& reply : parked)
      reply(Response::text(200, "changed"));
  }).join();
  for (auto& a : answers) {
    auto r = a.get();
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->body, "changed");
  }
}

TEST(HttpServerTls, SilentAndNonTlsClientsAreClosedAndOthersServed) {
  TestPki pki;
  IoThread io;
  Limits limits;
  limits.handshake_timeout = 300ms;
  Server server(io.io(), whoami_handler(), limits);
  const auto port = server.listen_tcp("127.0.0.1", 0, tls_of(pki)).value();

  RawSocket silent(port);
  ASSERT_TRUE(silent.connected());
  RawSocket plaintext(port);
  ASSERT_TRUE(plaintext.connected());
  plaintext.send_text("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(Client(tls_client(pki, port)).get("/").value().body, "anonymous");

  const auto start = std::chrono::steady_clock::now();
  const std::string from_silent = silent.read_all();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_EQ(from_silent.find("HTTP/"), std::string::npos);
  EXPECT_EQ(plaintext.read_all().find("HTTP/1.1 200"), std::string::npos);
  EXPECT_TRUE(lab::tests::wait_until([&] { return server.stats().connections_open == 0; }, 3s));
  EXPECT_EQ(Client(tls_client(pki, port)).get("/").value().body, "anonymous");
}

TEST(HttpServerTls, BadTlsMaterialIsAClearError) {
  IoThread io;
  Server server(io.io(), whoami_handler());
  auto r = server.listen_tcp("127.0.0.1", 0, TlsConfig{"not a cert", "not a key", ""});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("TLS certificate chain"), std::string::npos);
}

// ---- Unix sockets, stop, limits -------------------------------------------------------------

TEST(HttpServerUnix, PeerCredentialsIdentifyTheCaller) {
  lab::tests::TempDir dir;
  IoThread io;
  Server server(io.io(), [](const Request& req, const Reply& reply) {
    const auto& c = req.peer.credentials;
    reply(Response::text(200, c ? std::to_string(c->uid) + ":" + std::to_string(c->pid) : "none"));
  });
  const auto sock = dir / "run/labd.sock";
  ASSERT_TRUE(server.listen_unix(sock, 0660));
  EXPECT_EQ(std::filesystem::status(sock).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                std::filesystem::perms::group_read | std::filesystem::perms::group_write);
  ClientOptions o;
  o.base_url = "http://localhost";
  o.unix_socket = sock.string();
  auto r = Client(o).get("/v1/status");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->body, std::to_string(getuid()) + ":" + std::to_string(getpid()));
}

TEST(HttpServerUnix, StaleSocketIsReplacedButOtherFilesAreNot) {
  lab::tests::TempDir dir;
  IoThread io;
  {
    Server first(io.io(), echo_handler());
    ASSERT_TRUE(first.listen_unix(dir / "s.sock"));
  }
  Server second(io.io(), echo_handler());
  EXPECT_TRUE(second.listen_unix(dir / "s.sock"));
  dir.write("plain", "x");
  auto r = second.listen_unix(dir / "plain");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("not a socket"), std::string::npos);
}

TEST(HttpServer, StopClosesIdleConnectionsAndFinishesInFlightOnes) {
  IoThread io;
  std::promise<Reply> parked;
  Server server(io.io(), [&](const Request& req, Reply reply) {
    if (req.path == "/park") {
      parked.set_value(std::move(reply));
    } else {
      reply(Response::text(200, "ok"));
    }
  });
  const auto port = server.listen_tcp("127.0.0.1", 0).value();
  Client idle(plain(port));
  ASSERT_EQ(idle.get("/").value().status, 200);  // leaves an idle keep-alive connection
  auto in_flight = std::async(std::launch::async, [&] { return Client(plain(port)).get("/park"); });
  Reply reply = parked.get_future().get();

  auto stopped = std::make_shared<std::promise<void>>();
  auto stopped_future = stopped->get_future();
  server.stop([stopped] { stopped->set_value(); });
  EXPECT_EQ(stopped_future.wait_for(200ms), std::future_status::timeout);  // waits for /park
  reply(Response::text(200, "late"));
  EXPECT_EQ(in_flight.get().value().body, "late");
  EXPECT_EQ(stopped_future.wait_for(5s), std::future_status::ready);
  auto refused = Client(plain(port)).get("/");
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error() == ClientError::connect_failed);
}

TEST(HttpServer, ConnectionsPastTheLimitAreClosed) {
  IoThread io;
  Limits limits;
  limits.max_connections = 2;
  Server server(io.io(), echo_handler(), limits);
  const auto port = server.listen_tcp("127.0.0.1", 0).value();
  RawSocket a(port);
  RawSocket b(port);
  ASSERT_TRUE(lab::tests::wait_until([&] { return server.stats().connections_open == 2; }, 2s));
  RawSocket c(port);
  c.send_text("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(c.read_all(), "");
  EXPECT_GE(server.stats().rejected_total, 1u);
}

TEST(HttpServer, BadListenAddressesAreClearErrors) {
  IoThread io;
  Server server(io.io(), echo_handler());
  auto bad = server.listen_tcp("not-an-ip", 0);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("not-an-ip"), std::string::npos);
  const auto port = server.listen_tcp("127.0.0.1", 0).value();
  Server other(io.io(), echo_handler());
  auto busy = other.listen_tcp("127.0.0.1", port);
  ASSERT_FALSE(busy);
  EXPECT_NE(busy.error().message().find("cannot listen on 127.0.0.1:" + std::to_string(port)),
            std::string::npos);
}

// ---- Client failures ------------------------------------------------------------------------

TEST(HttpClient, RefusedTimedOutAndTooLargeAreDistinct) {
  IoThread io;
  std::promise<Reply> parked;
  Server server(io.io(), [&](const Request& req, Reply reply) {
    if (req.path == "/big") {
      reply(Response::text(200, std::string(10000, 'x')));
    } else {
      parked.set_value(std::move(reply));
    }
  });
  const auto port = server.listen_tcp("127.0.0.1", 0).value();

  auto opts = plain(port);
  opts.timeout = 300ms;
  auto slow = Client(opts).get("/never");
  ASSERT_FALSE(slow);
  EXPECT_TRUE(slow.error() == ClientError::timeout) << slow.error().message();
  parked.get_future().get()(Response::text(200, "too late"));

  opts.max_body = 100;
  auto big = Client(opts).get("/big");
  ASSERT_FALSE(big);
  EXPECT_TRUE(big.error() == ClientError::too_large);

  server.stop({});
  auto refused = Client(plain(port)).get("/");
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error() == ClientError::connect_failed);
  EXPECT_NE(refused.error().message().find("127.0.0.1"), std::string::npos);

  ClientOptions bad;
  bad.base_url = "gopher://x";
  EXPECT_TRUE(Client(bad).get("/").error() == ClientError::bad_url);
}

}  // namespace
