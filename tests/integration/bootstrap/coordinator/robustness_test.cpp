// Hostile and unlucky conditions against a real `lab serve`: malformed and oversized input,
// slow senders, and a SIGKILL in the middle of a stream of acknowledged writes.
#include "shared/json/json.hpp"
#include "tests/integration/bootstrap/coordinator/appliance.hpp"
#include "tests/support/text.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <thread>

namespace lab::tests::coordinator {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

using lab::tests::contains;

std::string code_of(const std::string& body) {
  auto o = shared::json::parse_object(body);
  if (!o || !o->contains("code") || !o->at("code").is_string())
    return "<no code in " + body + ">";
  return std::string(o->at("code").as_string());
}

TEST(CoordinatorRobustness, BadInputGetsAClear4xxAndTheServerKeepsServing) {
  Appliance a;
  const std::string json_type = "Content-Type: application/json";
  auto post_join = [&](const std::string& body, const std::string& type = "application/json") {
    return a.curl({"-X", "POST", "-H", "Content-Type: " + type, "--data-binary", body}, "/v1/join");
  };

  auto malformed = post_join(R"({"token": "x", )");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_EQ(code_of(malformed.body), "invalid_json");

  auto not_object = post_join("[1,2,3]");
  EXPECT_EQ(not_object.status, 400);

  auto wrong_type = post_join(R"({"token":"x"})", "text/plain");
  EXPECT_EQ(wrong_type.status, 415);
  EXPECT_EQ(code_of(wrong_type.body), "unsupported_media");

  auto missing = post_join(R"({"token":"x"})");
  EXPECT_EQ(missing.status, 400);
  EXPECT_TRUE(contains(missing.body, "csr") || contains(missing.body, "sealing_key"))
      << missing.body;

  // A well-formed request whose CSR is garbage names the field.
  auto m = make_join_request(a.create_token(), "web-1");
  auto o = shared::json::parse_object(m.body).value();
  o["csr"] =
      "-----BEGIN CERTIFICATE REQUEST-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE REQUEST-----\n";
  auto garbage = post_join(shared::json::to_string(o));
  EXPECT_EQ(garbage.status, 400);
  EXPECT_EQ(code_of(garbage.body), "invalid_csr");
  EXPECT_TRUE(contains(garbage.body, "csr")) << garbage.body;
  // The garbage did not use the token up.
  EXPECT_TRUE(join(a, std::string(o.at("token").as_string()), "web-1"));

  // Oversized body (the limit is coordinator.max_body_bytes, 1 MiB by default).
  const auto big = a.dir().write("big.json", "{\"token\":\"" + std::string(2 << 20, 'a') + "\"}");
  auto oversized =
      a.curl({"-X", "POST", "-H", json_type, "--data-binary", "@" + big.string()}, "/v1/join");
  EXPECT_TRUE(oversized.status == 413 || oversized.status == 0) << oversized.output;
  // Oversized headers (coordinator.max_header_bytes, 16 KiB by default).
  auto headers = a.curl({"-H", "X-Filler: " + std::string(20000, 'h')}, "/v1/tokens");
  EXPECT_TRUE(headers.status == 431 || headers.status == 400) << headers.status;

  // Operator bodies: bad JSON, wrong types, bad values name the field.
  const std::string auth = "Authorization: Bearer " + a.operator_token();
  auto bad_ttl =
      a.curl({"-X", "POST", "-H", auth, "-H", json_type, "--data-binary", R"({"ttl":"forever"})"},
             "/v1/tokens");
  EXPECT_EQ(bad_ttl.status, 400);
  EXPECT_TRUE(contains(bad_ttl.body, "ttl")) << bad_ttl.body;
  auto bad_labels = a.curl(
      {"-X", "POST", "-H", auth, "-H", json_type, "--data-binary", R"({"labels":{"role":7}})"},
      "/v1/tokens");
  EXPECT_EQ(bad_labels.status, 400);
  EXPECT_TRUE(contains(bad_labels.body, "labels.role")) << bad_labels.body;
  auto bad_group = a.curl(
      {"-X", "PUT", "-H", auth, "-H", json_type, "--data-binary", R"({"selector":"role in (a"})"},
      "/v1/groups/g");
  EXPECT_EQ(bad_group.status, 400) << bad_group.body;
  auto no_type = a.curl({"-X", "PUT", "-H", auth, "--data-binary", "{}"}, "/v1/groups/g");
  EXPECT_EQ(no_type.status, 415);
  auto bad_query = a.curl({"-H", auth}, "/v1/audit?limit=-1");
  EXPECT_EQ(bad_query.status, 400);

  // Routing.
  EXPECT_EQ(a.curl({"-H", auth}, "/v1/nope").status, 404);
  auto wrong_method = a.curl({"-X", "DELETE", "-H", auth}, "/v1/nodes");
  EXPECT_EQ(wrong_method.status, 405);

  // Garbage that is not HTTP at all, over TLS.
  auto junk =
      sh("printf 'NOT HTTP AT ALL\\r\\n\\r\\n' | timeout 10 openssl s_client -quiet "
         "-connect 127.0.0.1:" +
         std::to_string(a.port()) + " 2>/dev/null");
  EXPECT_TRUE(contains(junk.output, "400")) << junk.output;

  // Still serving.
  auto after = a.curl({"-H", auth}, "/v1/tokens");
  EXPECT_EQ(after.status, 200);
  EXPECT_FALSE(contains(a.output(), "AddressSanitizer"));
}

// A TCP connection to the TLS port that sends one byte a second.
int slow_tcp_client(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    return -1;
  return fd;
}

TEST(CoordinatorRobustness, SlowSendersAreCutOffAndOthersAreServedMeanwhile) {
  LAB_REQUIRE_PROGRAM("openssl");
  // The request timeout is well above the bound on the others' latency below, so a server that
  // only answers once the slow clients are cut off fails the test even on a loaded machine.
  Appliance a({"coordinator.request_timeout=8s", "coordinator.handshake_timeout=3s"});

  // Slowloris over TLS: a request line, then one header byte a second, never finishing.
  constexpr int kSlow = 10;
  std::vector<ChildProcess> slow;
  slow.reserve(kSlow);
  for (int i = 0; i < kSlow; ++i) {
    slow.push_back(ChildProcess::start(
        {.argv = {"sh", "-c",
                  "(printf 'GET /v1/tokens HTTP/1.1\\r\\nHost: x\\r\\n'; i=0; while [ $i -lt 30 ]; "
                  "do printf 'X'; sleep 1; i=$((i+1)); done) | openssl s_client -quiet -connect "
                  "127.0.0.1:" +
                      std::to_string(a.port())},
         .env = {},
         .netns = {},
         .log = {}}));
  }
  // Slow TCP: bytes that never make a TLS handshake.
  std::vector<int> raw;
  raw.reserve(kSlow);
  for (int i = 0; i < kSlow; ++i)
    raw.push_back(slow_tcp_client(a.port()));
  std::atomic<bool> dripping{true};
  std::thread drip([&] {
    for (int s = 0; s < 20 && dripping.load(); ++s) {
      for (const int fd : raw)
        (void)::send(fd, "\x16", 1, MSG_NOSIGNAL);
      std::this_thread::sleep_for(1s);
    }
  });

  // Meanwhile everyone else is served promptly.
  const std::string auth = "Authorization: Bearer " + a.operator_token();
  for (int i = 0; i < 5; ++i) {
    const auto t0 = Clock::now();
    auto r = a.curl({"-H", auth}, "/v1/tokens");
    EXPECT_EQ(r.status, 200);
    EXPECT_LT(Clock::now() - t0, 5s);
    std::this_thread::sleep_for(200ms);
  }

  // The slow TLS senders get 408 and are closed once request_timeout passes.
  for (auto& p : slow) {
    EXPECT_NE(p.wait(20s), -1) << "slow client still connected";
    EXPECT_TRUE(contains(p.output(), "408")) << p.output();
  }
  // The slow TCP senders are closed by the handshake timeout: recv sees EOF or a reset.
  for (const int fd : raw) {
    timeval tv{.tv_sec = 10, .tv_usec = 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[256];
    ssize_t n = 0;
    while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) {
    }
    EXPECT_TRUE(n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
        << "connection still open";
  }
  dripping.store(false);
  drip.join();
  for (const int fd : raw)
    ::close(fd);
  EXPECT_EQ(a.curl({"-H", auth}, "/v1/tokens").status, 200);
}

TEST(CoordinatorRobustness, KillNineLosesNoAcknowledgedWrite) {
  Appliance a;
  auto node = join(a, a.create_token("role=web"), "web-1");
  ASSERT_TRUE(node);

  // A stream of writes: each acknowledged group must survive the SIGKILL.
  std::atomic<bool> go{true};
  std::atomic<std::size_t> acked{0};
  std::vector<std::string> acknowledged;
  std::vector<std::string> acknowledged_labels;
  std::thread writer([&] {
    auto client = a.operator_client();
    for (int i = 0; i < 5000 && go.load(); ++i) {
      const std::string name = "g" + std::to_string(i);
      auto r = client.request("PUT", "/v1/groups/" + name,
                              R"({"selector":"role=web,n!=)" + std::to_string(i) + "\"}",
                              "application/json");
      if (!r || r->status != 200)
        return;
      acknowledged.push_back(name);
      const std::string v = std::to_string(i);
      auto l = client.request("PATCH", "/v1/nodes/" + node->id + "/labels",
                              R"({"set":{"seq":")" + v + "\"}}", "application/json");
      if (!l || l->status != 200)
        return;
      acknowledged_labels.push_back(v);
      acked.fetch_add(1);
    }
  });
  ASSERT_TRUE(wait_until([&] { return acked.load() >= 40; }, 60s));
  a.kill9();
  go.store(false);
  writer.join();
  ASSERT_GE(acknowledged.size(), 40U);

  a.start();
  auto groups = a.lab_json({"group", "list"});
  std::set<std::string> present;
  for (const auto& g : groups.as_array())
    present.emplace(g.at("name").as_string());
  for (const auto& name : acknowledged)
    EXPECT_TRUE(present.contains(name)) << "acknowledged group " << name << " is lost";
  // The last acknowledged label value is there (or the one whose answer the kill cut off).
  auto shown = a.lab_json({"node", "show", node->id});
  const std::string seq(shown.at("labels").at("seq").as_string());
  const int last = std::stoi(acknowledged_labels.back());
  EXPECT_TRUE(seq == std::to_string(last) || seq == std::to_string(last + 1)) << seq;

  auto verify = a.lab({"audit", "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  // And it keeps working.
  auto more = a.lab({"group", "set", "after-restart", "--selector", "role=web"});
  EXPECT_EQ(more.exit_code, 0) << more.output;
  EXPECT_EQ(a.lab({"audit", "verify"}).exit_code, 0);
}

}  // namespace
}  // namespace lab::tests::coordinator
