// A keeper that lies. Node M is enrolled like any other node (so it holds a certificate from the
// fleet CA and is the victim's keeper), but its peer port is this test's own server, which
// serves the victim V every kind of bad envelope in turn while the coordinator is down: signed
// by another key, for another node, older than the cached one, the cached one again,
// truncated, oversized. V refuses each with a logged reason, its cache and rendered files stay
// as they were, and it keeps serving; a connection flood and a forged fleet envelope pushed at
// V's listener change nothing either. Then M serves V's genuine newer envelope and V applies it.
#include "agent/daemon/node.hpp"
#include "shared/crypto/bytes.hpp"
#include "shared/crypto/keys.hpp"
#include "shared/envelope/envelope.hpp"
#include "shared/http/beast_client/client.hpp"
#include "shared/http/server/server.hpp"
#include "shared/json/json.hpp"
#include "shared/protocol/protocol.hpp"
#include "tests/integration/agent/appliance.hpp"
#include "tests/integration/agent/labd_fixture.hpp"
#include "tests/support/text.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

namespace {

using namespace lab::tests;
namespace daemon = lab::agent::daemon;
namespace http = lab::shared::http;
namespace crypto = lab::shared::crypto;
namespace protocol = lab::shared::protocol;

std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  (void)::bind(fd, reinterpret_cast<sockaddr*>(&a), len);
  (void)::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string read_all(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

boost::json::object status_of(const LabdNode& n) {
  auto r = n.labd({"status", "--output", "json"});
  auto o = lab::shared::json::parse_object(r.output);
  return o ? *o : boost::json::object{};
}

std::int64_t int_of(const boost::json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_int64() ? v->as_int64() : -1;
}
std::string text_of(const boost::json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

// Node M as the test holds it: its identity, and a client to the coordinator with its
// certificate.
struct Member {
  daemon::OpenNode node;
  http::BeastClient coordinator;

  static http::BeastClient client(const daemon::OpenNode& n) {
    http::BeastClientOptions o;
    o.base_url = n.identity.coordinator_url;
    o.ca_pem = n.identity.ca_pem;
    o.client_cert_pem = n.identity.certificate_pem;
    o.client_key_pem = n.identity.tls_key_pem;
    return http::BeastClient(std::move(o));
  }

  // The envelopes M keeps, by node, as the coordinator hands them to a keeper.
  std::map<std::string, crypto::Bytes> kept() {
    auto r = coordinator.get("/v1/agent/kept?since=0");
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : r.error().message());
    std::map<std::string, crypto::Bytes> out;
    if (!r || r->status != 200)
      return out;
    auto k = protocol::kept_from_json(lab::shared::json::parse_object(r->body).value());
    for (const auto& e : k.value().envelopes) {
      auto env = lab::shared::envelope::parse(e).value();
      auto b = protocol::parse_bundle(crypto::as_chars(env.payload)).value();
      out[b.node_id] = e;
    }
    return out;
  }
};

// M's peer port: serves GET /v1/peer/envelope from `serve` (set by the test), counts requests.
class LyingKeeper {
 public:
  LyingKeeper(const daemon::OpenNode& m, std::uint16_t port)
      : server_(io_, [this](const http::Request& req, const http::Reply& reply) {
          reply(handle(req));
        }) {
    server_
        .listen_tcp(
            "127.0.0.1", port,
            http::TlsConfig{m.identity.certificate_pem, m.identity.tls_key_pem, m.identity.ca_pem})
        .value();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~LyingKeeper() {
    io_.stop();
    thread_.join();
  }
  LyingKeeper(const LyingKeeper&) = delete;
  LyingKeeper& operator=(const LyingKeeper&) = delete;

  void serve(std::string body) {
    const std::lock_guard lock(mu_);
    body_ = std::move(body);
    asked_ = 0;
  }
  [[nodiscard]] int asked() const { return asked_.load(); }

 private:
  http::Response handle(const http::Request& req) {
    http::Response r;
    if (req.path == "/v1/peer/envelope") {
      ++asked_;
      const std::lock_guard lock(mu_);
      r.status = 200;
      r.body = body_;
      return r;
    }
    r.status = 204;
    r.headers.set("Lab-Fleet-Revision", "0");
    return r;
  }

  boost::asio::io_context io_;
  http::Server server_;
  std::thread thread_;
  std::mutex mu_;
  std::string body_;
  std::atomic<int> asked_{0};
};

TEST(MaliciousPeer, EveryBadEnvelopeIsRefusedAndTheCacheStaysAsItWas) {
  LabServe appliance;
  const std::uint16_t victim_port = free_port();
  const std::uint16_t keeper_port = free_port();
  LabdNode victim(fmt::format("key_protection = \"file\"\n[peer]\nlisten = \"127.0.0.1:{}\"\n"
                              "gossip_interval = \"1s\"\n",
                              victim_port),
                  false);
  LabdNode member("key_protection = \"file\"\n[peer]\nlisten = \"off\"\n", false);
  ASSERT_EQ(victim.labd({"join", appliance.token(), "--hostname", "victim"}).exit_code, 0);
  ASSERT_EQ(member.labd({"join", appliance.token(), "--hostname", "member"}).exit_code, 0);
  auto m_node = daemon::open_node(member.settings());
  ASSERT_TRUE(m_node) << m_node.error().message();
  auto m_client = Member::client(*m_node);
  Member m{std::move(*m_node), std::move(m_client)};
  // M tells the coordinator where peers reach it, so it becomes the victim's keeper.
  auto reported = m.coordinator.post_json(
      "/v1/agent/report",
      fmt::format(R"({{"state":"ready","facts":{{"peer_address":"127.0.0.1:{}"}}}})", keeper_port));
  ASSERT_TRUE(reported && reported->status / 100 == 2) << (reported ? reported->body : "");

  auto running = victim.start();
  ASSERT_TRUE(victim.wait_ready());
  const std::string victim_id = text_of(status_of(victim), "node_id");
  std::map<std::string, crypto::Bytes> first;
  ASSERT_TRUE(wait_until(
      [&] {
        first = m.kept();
        return first.contains(victim_id);
      },
      30s))
      << "M never became the victim's keeper";
  const crypto::Bytes older = first[victim_id];

  // The victim moves on (the keeper keeps the newer one), then stops; a last change is made
  // while it is down, and the coordinator goes away.
  ASSERT_EQ(appliance.lab({"node", "label", "victim", "step=two", "--overwrite"}).exit_code, 0);
  crypto::Bytes cached;
  ASSERT_TRUE(wait_until(
      [&] {
        auto k = m.kept();
        cached = k[victim_id];
        return cached != older && contains(read_all(victim.run_dir() / "labels.json"), "two");
      },
      30s));
  ASSERT_TRUE(wait_until([&] { return int_of(status_of(victim), "revision") > 0; }, 10s));
  running.stop();
  ASSERT_EQ(appliance.lab({"node", "label", "victim", "step=three", "--overwrite"}).exit_code, 0);
  crypto::Bytes newer;
  ASSERT_TRUE(wait_until(
      [&] {
        newer = m.kept()[victim_id];
        return newer != cached;
      },
      30s));
  auto own = m.coordinator.get("/v1/agent/bundle?since=0&wait=0");
  ASSERT_TRUE(own && own->status == 200);
  const std::string others_envelope = own->body;
  appliance.stop();

  LyingKeeper keeper(m.node, keeper_port);
  const auto bad_key = crypto::Ed25519PrivateKey::generate().value();
  protocol::Bundle forged;
  forged.node_id = victim_id;
  forged.name = "victim";
  forged.revision = 1'000'000;
  forged.state = "ready";
  forged.labels = {{"owned", "yes"}};
  const auto forged_env = lab::shared::envelope::seal(bad_key, protocol::kBundleKind,
                                                      crypto::as_bytes(protocol::serialize(forged)))
                              .value();

  running = victim.start();
  ASSERT_TRUE(victim.wait_ready());
  const std::string labels_before = read_all(victim.run_dir() / "labels.json");
  const std::int64_t revision_before = int_of(status_of(victim), "revision");
  ASSERT_TRUE(contains(labels_before, "two")) << labels_before;

  struct Bad {
    const char* kind;
    std::string body;
    const char* logged;
  };
  const std::vector<Bad> bad = {
      {"signed by another key", std::string(crypto::as_chars(forged_env)), "envelope refused"},
      {"for another node", others_envelope, "it is node"},
      {"older than the cached one", std::string(crypto::as_chars(older)), "not newer"},
      {"the cached one again", std::string(crypto::as_chars(cached)), "not newer"},
      {"truncated", std::string(crypto::as_chars(newer)).substr(0, newer.size() - 10),
       "envelope refused"},
      {"oversized", std::string(std::size_t{64} * 1024 * 1024 + 1, 'x'), "larger than"},
  };
  for (const auto& b : bad) {
    const std::size_t log_before = running.output().size();
    keeper.serve(b.body);
    ASSERT_TRUE(wait_until([&] { return keeper.asked() >= 2; }, 30s))
        << "the victim stopped asking its keeper: " << running.output();
    const auto st = status_of(victim);
    EXPECT_EQ(int_of(st, "revision"), revision_before) << b.kind;
    EXPECT_EQ(read_all(victim.run_dir() / "labels.json"), labels_before) << b.kind;
    const std::string log = running.output().substr(log_before);
    EXPECT_TRUE(contains(log, "keeper had no newer envelope")) << b.kind << ": " << log;
    EXPECT_TRUE(contains(log, b.logged)) << b.kind << ": " << log;
    EXPECT_TRUE(running.running()) << b.kind;
  }

  // A flood of connections and requests at the victim's listener: bounded, and it keeps
  // serving its node.
  std::vector<int> held;
  for (int i = 0; i < 300; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(victim_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0)
      held.push_back(fd);
    else
      ::close(fd);
  }
  EXPECT_EQ(int_of(status_of(victim), "revision"), revision_before);
  for (const int fd : held)
    ::close(fd);
  http::BeastClientOptions po;
  po.base_url = fmt::format("https://127.0.0.1:{}", victim_port);
  po.ca_pem = m.node.identity.ca_pem;
  po.server_name = victim_id;
  po.client_cert_pem = m.node.identity.certificate_pem;
  po.client_key_pem = m.node.identity.tls_key_pem;
  const auto bad_fleet =
      lab::shared::envelope::seal(
          bad_key, protocol::kFleetKind,
          crypto::as_bytes(protocol::serialize(protocol::Fleet{99, 0, {"1234"}, {victim_id}})))
          .value();
  int statuses_400 = 0;
  int statuses_429 = 0;
  for (int i = 0; i < 60; ++i) {
    http::BeastClient c(po);
    http::Headers h;
    h.set("Lab-Fleet-Revision", "99");
    auto r = c.request("POST", "/v1/peer/fleet", crypto::as_chars(bad_fleet),
                       "application/vnd.lab.envelope", h);
    if (r && r->status == 400)
      ++statuses_400;
    if (r && r->status == 429)
      ++statuses_429;
  }
  EXPECT_GT(statuses_400, 0) << "the forged fleet envelope was not refused";
  EXPECT_GT(statuses_429, 0) << "a peer flooding the listener was never rate-limited";
  const auto after_flood = status_of(victim);
  EXPECT_EQ(int_of(after_flood, "fleet_revision"), 0) << boost::json::serialize(after_flood);
  EXPECT_EQ(text_of(after_flood, "sync"), "unreachable");
  EXPECT_TRUE(contains(running.output(), "fleet envelope refused"));

  // The genuine newer envelope, relayed by the same keeper, is applied.
  keeper.serve(std::string(crypto::as_chars(newer)));
  ASSERT_TRUE(wait_until(
      [&] { return contains(read_all(victim.run_dir() / "labels.json"), "three"); }, 30s))
      << running.output();
  const auto st = status_of(victim);
  EXPECT_EQ(text_of(st, "source"), "peer");
  EXPECT_TRUE(contains(text_of(st, "source_peer"), m.node.identity.node_id))
      << boost::json::serialize(st);
  EXPECT_GT(int_of(st, "revision"), revision_before);
}

}  // namespace
