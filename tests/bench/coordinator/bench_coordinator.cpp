// Coordinator benchmark: the real `lab serve` on loopback, N simulated agents in this process
// (async TLS clients on one io_context). Measures join throughput, the coordinator's memory
// while N bundle long-polls are parked, and the time from one fleet-wide change (a new group
// covering every agent) to the last agent holding its new signed bundle.
//
//   bench_coordinator [--agents 1000,10000] [--join-concurrency 32] [--lab PATH]
//                     [--server-cpu 0] [--client-cpu 1]
//
// Under ctest (--benchmark_min_time=…) it runs one small pass against the build's own `lab`.
#include "shared/crypto/encoding.hpp"
#include "shared/crypto/keys.hpp"
#include "shared/crypto/x509.hpp"
#include "shared/envelope/envelope.hpp"
#include "shared/protocol/protocol.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace lab::bench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
namespace json = boost::json;
namespace cr = shared::crypto;
namespace proto = shared::protocol;
using Tcp = asio::ip::tcp;
using Stream = beast::ssl_stream<beast::tcp_stream>;
using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

struct Options {
  std::vector<std::size_t> agents{1000, 10000};
  std::size_t join_concurrency = 32;
  std::size_t connect_concurrency = 128;  // TLS handshakes in flight while parking
  std::filesystem::path lab;
  int server_cpu = 0;
  int client_cpu = 1;
  bool smoke = false;
};

[[noreturn]] void die(const std::string& what) {
  std::cerr << "bench_coordinator: " << what << "\n";
  std::exit(1);  // NOLINT(concurrency-mt-unsafe): before any thread exists or at the end
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' '))
    s.pop_back();
  return s;
}

/// VmRSS and VmHWM of a process, in KiB.
struct Memory {
  std::int64_t rss_kib = 0;
  std::int64_t hwm_kib = 0;
};
Memory memory_of(pid_t pid) {
  Memory m;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    auto value = [&] { return std::stoll(line.substr(line.find(':') + 1)); };
    if (line.starts_with("VmRSS:"))
      m.rss_kib = value();
    else if (line.starts_with("VmHWM:"))
      m.hwm_kib = value();
  }
  return m;
}

/// User + system CPU time of a process, in clock ticks.
std::int64_t cpu_ticks_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  std::int64_t utime = 0;
  std::int64_t stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14)
      utime = std::stoll(field);
    if (i == 15)
      stime = std::stoll(field);
  }
  return utime + stime;
}

double mib(std::int64_t kib) {
  return static_cast<double>(kib) / 1024.0;
}

// ---- OpenSSL handles ------------------------------------------------------------------------

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

X509Ptr x509_from_pem(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}
PkeyPtr pkey_from_pem(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  return PkeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

// ---- One simulated agent --------------------------------------------------------------------

struct Agent {
  cr::EcPrivateKey tls = cr::EcPrivateKey::generate().value();
  cr::X25519PrivateKey sealing = cr::X25519PrivateKey::generate().value();
  std::string token;
  proto::JoinResponse joined;
  X509Ptr cert;
  PkeyPtr key;

  std::int64_t first_revision = 0;
  unsigned status = 0;  // of the long-poll that ended the wait
  std::int64_t revision = 0;
  std::string body;
  SteadyClock::time_point arrived{};
  int reparks = 0;
};

// ---- HTTPS over Beast -----------------------------------------------------------------------

/// One client connection with its read buffer (kept across keep-alive requests).
struct Conn {
  Conn(asio::io_context& io, ssl::context& ctx) : stream(io, ctx) {}
  Stream stream;
  beast::flat_buffer buffer;
};

struct Reply {
  beast::error_code ec;
  unsigned status = 0;
  std::string body;
  std::int64_t revision = -1;  // Lab-Revision header
};

asio::awaitable<beast::error_code> connect(Conn& c, const Tcp::endpoint& ep) {
  beast::get_lowest_layer(c.stream).expires_after(60s);
  auto [ec] = co_await beast::get_lowest_layer(c.stream).async_connect(ep, kTuple);
  if (ec)
    co_return ec;
  auto [hec] = co_await c.stream.async_handshake(ssl::stream_base::client, kTuple);
  co_return hec;
}

asio::awaitable<beast::error_code> send(Conn& c, bhttp::verb verb, const std::string& target,
                                        const std::string& body, const std::string& bearer) {
  bhttp::request<bhttp::string_body> req{verb, target, 11};
  req.set(bhttp::field::host, "127.0.0.1");
  req.keep_alive(true);
  if (!bearer.empty())
    req.set(bhttp::field::authorization, "Bearer " + bearer);
  if (verb != bhttp::verb::get) {
    req.set(bhttp::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
  }
  beast::get_lowest_layer(c.stream).expires_after(60s);
  auto [ec, n] = co_await bhttp::async_write(c.stream, req, kTuple);
  co_return ec;
}

asio::awaitable<Reply> receive(Conn& c, std::chrono::seconds timeout) {
  Reply r;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(std::size_t{4} * 1024 * 1024);
  beast::get_lowest_layer(c.stream).expires_after(timeout);
  auto [ec, n] = co_await bhttp::async_read(c.stream, c.buffer, parser, kTuple);
  r.ec = ec;
  if (ec)
    co_return r;
  auto& msg = parser.get();
  r.status = msg.result_int();
  if (auto it = msg.find("Lab-Revision"); it != msg.end()) {
    const auto v = it->value();
    std::from_chars(v.data(), v.data() + v.size(), r.revision);
  }
  r.body = std::move(msg.body());
  co_return r;
}

asio::awaitable<Reply> exchange(Conn& c, bhttp::verb verb, const std::string& target,
                                const std::string& body = {}, const std::string& bearer = {}) {
  // clang-tidy 14's analyzer does not follow Asio's awaitable frames through co_await.
  // NOLINTNEXTLINE(clang-analyzer-core.NullDereference)
  if (auto ec = co_await send(c, verb, target, body, bearer); ec) {
    Reply r;
    r.ec = ec;
    co_return r;
  }
  co_return co_await receive(c, 60s);
}

asio::awaitable<void> sleep_for(SteadyClock::duration d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(kTuple);
}

std::string describe(const Reply& r) {
  if (r.ec)
    return r.ec.message();
  return "HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 200);
}

// ---- One run: a fresh `lab serve` and N agents ------------------------------------------------

struct Figures {
  std::size_t agents = 0;
  double tokens_per_s = 0;
  double joins_per_s = 0;
  double park_setup_s = 0;
  Memory before_parking;
  Memory parked;
  Memory after_delivery;
  std::optional<double> heap_in_use;  // bytes, from /metrics while parked
  std::optional<double> heap_free;
  double put_ms = 0;    // PUT /v1/groups answered
  double first_ms = 0;  // first agent has its bundle
  double p50_ms = 0;
  double p99_ms = 0;
  double last_ms = 0;          // last agent has its bundle
  double delivery_cpu_ms = 0;  // coordinator CPU time (user + system) from change to last bundle
  int reparks = 0;
  std::size_t verified = 0;
};

class Run {
 public:
  Run(const Options& options, std::size_t n) : options_(options), n_(n) {}

  Figures go() {
    start_server();
    prepare_agents();
    asio::co_spawn(io_, main_flow(), [](const std::exception_ptr& e) {
      if (e)
        std::rethrow_exception(e);
    });
    io_.run();
    if (!error_.empty())
      die("N=" + std::to_string(n_) + ": " + error_ + "\n--- lab serve log ---\n" +
          server_->output().substr(0, 4000));
    verify();
    const int rc = server_->stop(10s);
    if (rc != 0)
      die("lab serve exited with " + std::to_string(rc) + "\n" + server_->output().substr(0, 4000));
    return figures_;
  }

 private:
  void start_server() {
    const auto config = dir_.write("lab.toml", "");
    data_ = dir_.path() / "data";
    tests::ChildProcess::Options o;
    o.argv = {"taskset",
              "-c",
              std::to_string(options_.server_cpu),
              options_.lab.string(),
              "serve",
              "-c",
              config.string(),
              "--data-dir",
              data_.string(),
              "--log-level",
              "warn",
              "--set",
              "coordinator.listen=127.0.0.1:0",
              "--set",
              "coordinator.max_connections=" + std::to_string(n_ + 1000)};
    o.log = dir_.path() / "serve.log";
    server_.emplace(tests::ChildProcess::start(o));
    const auto url_file = data_ / "coordinator.url";
    if (!tests::wait_until([&] { return std::filesystem::exists(url_file) || !server_->running(); },
                           60s) ||
        !std::filesystem::exists(url_file)) {
      die("lab serve did not start:\n" + server_->output());
    }
    const std::string url = trim(slurp(url_file));
    const auto colon = url.rfind(':');
    const auto port = static_cast<std::uint16_t>(std::stoi(url.substr(colon + 1)));
    endpoint_ = Tcp::endpoint(asio::ip::make_address("127.0.0.1"), port);
    operator_token_ = trim(slurp(data_ / "operator.token"));
    const std::string ca = slurp(data_ / "ca.pem");

    ctx_.add_certificate_authority(asio::buffer(ca));
    ctx_.set_verify_mode(ssl::verify_peer);
    ctx_.set_verify_callback(ssl::host_name_verification("127.0.0.1"));
    // Ten thousand idle client connections in this process: free idle TLS buffers here too.
    // Like labd, present the client certificate alone (no chain built from the CA).
    SSL_CTX_set_mode(ctx_.native_handle(), SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
  }

  void prepare_agents() {
    agents_.resize(n_);
    for (std::size_t i = 0; i < n_; ++i)
      agents_[i] = std::make_unique<Agent>();
  }

  asio::awaitable<void> main_flow() {
    co_await make_tokens();
    if (!error_.empty())
      co_return;
    co_await join_all();
    if (!error_.empty())
      co_return;
    co_await park_and_change();
    // The agents have parked again (as labd does after a change); nothing else is awaited.
    io_.stop();
  }

  // Runs `per_item(connection, i)` for i in [0, n) over --join-concurrency connections of
  // their own, each taking the next item when its last one is done; returns items per second.
  // `per_item` returns false to stop its worker (after calling fail()).
  asio::awaitable<double> on_workers(
      std::string_view what,
      const std::function<asio::awaitable<bool>(Conn&, std::size_t)>& per_item) {
    const auto t0 = SteadyClock::now();
    std::size_t next = 0;
    std::size_t done_workers = 0;
    const std::size_t workers = std::min(options_.join_concurrency, n_);
    for (std::size_t w = 0; w < workers; ++w) {
      asio::co_spawn(
          io_,
          [&]() -> asio::awaitable<void> {
            Conn c(io_, ctx_);
            if (auto ec = co_await connect(c, endpoint_); ec) {
              fail(std::string(what) + " connection: " + ec.message());
            } else {
              while (next < n_ && error_.empty()) {
                if (!co_await per_item(c, next++))
                  break;
              }
            }
            ++done_workers;
          },
          asio::detached);
    }
    while (done_workers < workers)
      co_await sleep_for(5ms);
    co_return static_cast<double>(n_) /
        std::chrono::duration<double>(SteadyClock::now() - t0).count();
  }

  // Operator tokens, one per agent, over `join_concurrency` keep-alive connections.
  asio::awaitable<void> make_tokens() {
    const std::string body =
        json::serialize(json::object{{"labels", json::object{{"bench", "yes"}}}, {"ttl", "2h"}});
    figures_.tokens_per_s =
        co_await on_workers("token", [&](Conn& c, std::size_t i) -> asio::awaitable<bool> {
          auto r = co_await exchange(c, bhttp::verb::post, "/v1/tokens", body, operator_token_);
          if (r.ec || r.status != 201) {
            fail("POST /v1/tokens: " + describe(r));
            co_return false;
          }
          agents_[i]->token = std::string(json::parse(r.body).at("token").as_string());
          co_return true;
        });
  }

  asio::awaitable<void> join_all() {
    // The CSRs and join bodies are made before the clock starts: this measures the server.
    std::vector<std::string> bodies(n_);
    for (std::size_t i = 0; i < n_; ++i) {
      proto::JoinRequest r;
      r.token = agents_[i]->token;
      r.csr_pem = cr::make_csr(agents_[i]->tls, "agent-" + std::to_string(i)).value();
      const auto raw = agents_[i]->sealing.public_key().raw();
      r.sealing_key = cr::base64url_encode(raw);
      r.hostname = "agent-" + std::to_string(i);
      r.agent_version = "bench";
      bodies[i] = json::serialize(proto::to_json(r));
    }
    figures_.joins_per_s =
        co_await on_workers("join", [&](Conn& c, std::size_t i) -> asio::awaitable<bool> {
          auto r = co_await exchange(c, bhttp::verb::post, "/v1/join", bodies[i]);
          if (r.ec || r.status != 200) {
            fail("POST /v1/join: " + describe(r));
            co_return false;
          }
          auto parsed = proto::join_response_from_json(json::parse(r.body).as_object());
          if (!parsed) {
            fail("join response: " + parsed.error().message());
            co_return false;
          }
          agents_[i]->joined = std::move(*parsed);
          co_return true;
        });
    for (auto& a : agents_) {
      a->cert = x509_from_pem(a->joined.certificate_pem);
      a->key = pkey_from_pem(a->tls.to_pem());
      if (!a->cert || !a->key)
        fail("cannot load an agent's certificate or key");
    }
  }

  // One agent: mTLS connection, the current bundle, then long-polls until its view moves past
  // what it first saw (a 204 after `wait` re-parks, as labd does), then parks again for the
  // next change on the same connection, as labd does: delivery is measured with the server
  // taking those requests in, not with it tearing connections down.
  asio::awaitable<void> agent_loop(Agent& a) {
    while (connecting_ >= options_.connect_concurrency)
      co_await sleep_for(1ms);
    ++connecting_;
    Conn c(io_, ctx_);
    SSL* ssl_handle = c.stream.native_handle();
    if (SSL_use_certificate(ssl_handle, a.cert.get()) != 1 ||
        SSL_use_PrivateKey(ssl_handle, a.key.get()) != 1) {
      --connecting_;
      fail("SSL_use_certificate");
      co_return;
    }
    auto ec = co_await connect(c, endpoint_);
    --connecting_;
    if (ec) {
      fail("agent connection: " + ec.message());
      co_return;
    }
    auto first = co_await exchange(c, bhttp::verb::get, "/v1/agent/bundle?since=0");
    if (first.ec || first.status != 200 || first.revision <= 0) {
      fail("first bundle: " + describe(first));
      co_return;
    }
    a.first_revision = first.revision;
    const std::string target =
        "/v1/agent/bundle?since=" + std::to_string(a.first_revision) + "&wait=55";
    bool counted = false;
    for (;;) {
      if (auto sec = co_await send(c, bhttp::verb::get, target, {}, {}); sec) {
        fail("long-poll send: " + sec.message());
        co_return;
      }
      if (!counted) {
        ++parked_sent_;
        counted = true;
      }
      auto r = co_await receive(c, 90s);
      if (!r.ec && r.status == 204) {
        ++a.reparks;
        continue;
      }
      a.arrived = SteadyClock::now();
      if (r.ec || r.status != 200) {
        fail("long-poll: " + describe(r));
        co_return;
      }
      a.status = r.status;
      a.revision = r.revision;
      a.body = std::move(r.body);
      ++answered_;
      const std::string next = "/v1/agent/bundle?since=" + std::to_string(a.revision) + "&wait=55";
      if (auto sec = co_await send(c, bhttp::verb::get, next, {}, {}); sec) {
        fail("long-poll send after the change: " + sec.message());
        co_return;
      }
      (void)co_await receive(c, 90s);  // ends with the run (io_context stopped)
      co_return;
    }
  }

  // An operator request on a connection of its own: parking ten thousand agents takes longer
  // than the server keeps an idle keep-alive connection open.
  asio::awaitable<Reply> operator_call(bhttp::verb verb, const std::string& target,
                                       const std::string& body = {}) {
    Conn op(io_, ctx_);
    if (auto ec = co_await connect(op, endpoint_); ec) {
      Reply r;
      r.ec = ec;
      co_return r;
    }
    co_return co_await exchange(op, verb, target, body, operator_token_);
  }

  // One sample from the API's /metrics, e.g. "lab_api_long_polls_parked".
  asio::awaitable<std::optional<double>> metric(std::string_view name) {
    auto r = co_await operator_call(bhttp::verb::get, "/metrics");
    if (r.ec || r.status != 200)
      co_return std::nullopt;
    std::istringstream in(r.body);
    std::string line;
    while (std::getline(in, line)) {
      if (line.size() > name.size() && line.starts_with(name) && line[name.size()] == ' ')
        co_return std::stod(line.substr(name.size() + 1));
    }
    co_return std::nullopt;
  }

  asio::awaitable<std::optional<std::size_t>> parked_on_server() {
    const auto v = co_await metric("lab_api_long_polls_parked");
    if (!v)
      co_return std::nullopt;
    co_return static_cast<std::size_t>(*v);
  }

  asio::awaitable<void> park_and_change() {
    figures_.before_parking = memory_of(server_->pid());
    const auto t_setup = SteadyClock::now();
    for (auto& a : agents_)
      asio::co_spawn(io_, agent_loop(*a), asio::detached);

    const auto deadline = SteadyClock::now() + 600s;
    while (parked_sent_ < n_ && error_.empty() && SteadyClock::now() < deadline)
      co_await sleep_for(10ms);
    if (!error_.empty())
      co_return;
    // Every request is written; wait until the server has parked all of them.
    std::optional<std::size_t> parked;
    while (SteadyClock::now() < deadline) {
      parked = co_await parked_on_server();
      if (!parked || *parked >= n_)
        break;
      co_await sleep_for(50ms);
    }
    if (!parked) {
      fail("/metrics has no lab_api_long_polls_parked gauge");
      co_return;
    }
    if (*parked < n_) {
      fail("only " + std::to_string(*parked) + " long-polls parked");
      co_return;
    }
    figures_.park_setup_s = std::chrono::duration<double>(SteadyClock::now() - t_setup).count();
    co_await sleep_for(1s);  // let allocator and kernel settle before reading memory
    figures_.parked = memory_of(server_->pid());
    figures_.heap_in_use = co_await metric(R"(lab_process_heap_bytes{state="in_use"})");
    figures_.heap_free = co_await metric(R"(lab_process_heap_bytes{state="free"})");

    // The change: a new group whose selector covers every agent joins every node's view.
    const auto cpu0 = cpu_ticks_of(server_->pid());
    const auto t0 = SteadyClock::now();
    auto put = co_await operator_call(bhttp::verb::put, "/v1/groups/bench-wave",
                                      R"({"selector":"bench=yes"})");
    const auto t_put = SteadyClock::now();
    if (put.ec || put.status / 100 != 2) {
      fail("PUT /v1/groups/bench-wave: " + describe(put));
      co_return;
    }
    while (answered_ < n_ && error_.empty() && SteadyClock::now() < t0 + 120s)
      co_await sleep_for(1ms);
    if (answered_ < n_) {
      fail(std::to_string(n_ - answered_) + " agents never received the change");
      co_return;
    }
    figures_.delivery_cpu_ms = static_cast<double>(cpu_ticks_of(server_->pid()) - cpu0) * 1000.0 /
                               static_cast<double>(sysconf(_SC_CLK_TCK));
    figures_.after_delivery = memory_of(server_->pid());
    auto ms = [&](SteadyClock::time_point t) {
      return std::chrono::duration<double, std::milli>(t - t0).count();
    };
    std::vector<double> arrivals;
    arrivals.reserve(n_);
    for (const auto& a : agents_) {
      arrivals.push_back(ms(a->arrived));
      figures_.reparks += a->reparks;
    }
    std::sort(arrivals.begin(), arrivals.end());
    figures_.agents = n_;
    figures_.put_ms = ms(t_put);
    figures_.first_ms = arrivals.front();
    figures_.p50_ms = arrivals[arrivals.size() / 2];
    figures_.p99_ms = arrivals[std::min(arrivals.size() - 1, arrivals.size() * 99 / 100)];
    figures_.last_ms = arrivals.back();
  }

  // Every delivered body is the agent's own view, signed by the coordinator, with the group.
  void verify() {
    const auto key_raw = cr::base64url_decode(agents_.front()->joined.bundle_key).value();
    const auto key = cr::Ed25519PublicKey::from_raw(key_raw).value();
    for (const auto& a : agents_) {
      auto env = shared::envelope::open(cr::as_bytes(a->body), key, proto::kBundleKind);
      if (!env)
        die("bundle of " + a->joined.node_id + " does not verify: " + env.error().message());
      auto b = proto::parse_bundle(cr::as_chars(env->payload));
      if (!b)
        die("bundle payload: " + b.error().message());
      if (b->node_id != a->joined.node_id || b->revision != a->revision ||
          b->revision <= a->first_revision ||
          std::find(b->groups.begin(), b->groups.end(), "bench-wave") == b->groups.end()) {
        die("bundle of " + a->joined.node_id + " is not the changed view");
      }
      ++figures_.verified;
    }
  }

  // The agents' loops would otherwise keep the io_context running.
  void fail(std::string what) {
    if (error_.empty())
      error_ = std::move(what);
    io_.stop();
  }

  const Options& options_;
  const std::size_t n_;
  tests::TempDir dir_{"lab-bench-coord"};
  std::filesystem::path data_;
  std::optional<tests::ChildProcess> server_;
  asio::io_context io_{1};
  ssl::context ctx_{ssl::context::tls_client};
  Tcp::endpoint endpoint_;
  std::string operator_token_;
  std::vector<std::unique_ptr<Agent>> agents_;
  std::size_t connecting_ = 0;
  std::size_t parked_sent_ = 0;
  std::size_t answered_ = 0;
  std::string error_;
  Figures figures_;
};

void print(const Figures& f, const Options& o) {
  const double per_poll_kib = static_cast<double>(f.parked.rss_kib - f.before_parking.rss_kib) /
                              static_cast<double>(f.agents);
  std::printf("N=%zu agents\n", f.agents);
  std::printf("  tokens   %.0f/s, joins %.0f/s (%zu concurrent connections)\n", f.tokens_per_s,
              f.joins_per_s, o.join_concurrency);
  std::printf("  parking  %zu long-polls parked in %.1f s (mTLS handshake + first bundle each)\n",
              f.agents, f.park_setup_s);
  std::printf(
      "  memory   coordinator VmRSS %.1f MiB before parking, %.1f MiB parked (%.1f KiB per "
      "parked poll), %.1f MiB after delivery; VmHWM %.1f MiB\n",
      mib(f.before_parking.rss_kib), mib(f.parked.rss_kib), per_poll_kib,
      mib(f.after_delivery.rss_kib), mib(f.after_delivery.hwm_kib));
  if (f.heap_in_use && f.heap_free) {
    std::printf("           parked heap: %.1f MiB in use, %.1f MiB free in the allocator\n",
                *f.heap_in_use / 1048576.0, *f.heap_free / 1048576.0);
  }
  std::printf(
      "  change   PUT answered %.0f ms; bundles received: first %.0f ms, p50 %.0f ms, p99 %.0f "
      "ms, last %.0f ms after the change (%zu signatures verified, %d re-parks)\n",
      f.put_ms, f.first_ms, f.p50_ms, f.p99_ms, f.last_ms, f.verified, f.reparks);
  std::printf(
      "           coordinator CPU from the change to the last bundle: %.0f ms (%.0f us per "
      "agent)\n",
      f.delivery_cpu_ms, f.delivery_cpu_ms * 1000.0 / static_cast<double>(f.agents));
  if (f.agents >= 10000) {
    std::printf("  targets  RSS parked < 300 MiB: %s; delivery to all < 2 s: %s\n",
                mib(f.parked.rss_kib) < 300.0 ? "met" : "MISSED",
                f.last_ms < 2000.0 ? "met" : "MISSED");
  }
  (void)std::fflush(stdout);
}

Options parse(int argc, char** argv) {
  Options o;
  o.lab = tests::lab_binary();
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        die(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--agents") {
      o.agents.clear();
      std::stringstream ss(value());
      std::string item;
      while (std::getline(ss, item, ','))
        o.agents.push_back(std::stoul(item));
    } else if (arg == "--join-concurrency") {
      o.join_concurrency = std::stoul(value());
    } else if (arg == "--lab") {
      o.lab = value();
    } else if (arg == "--server-cpu") {
      o.server_cpu = std::stoi(value());
    } else if (arg == "--client-cpu") {
      o.client_cpu = std::stoi(value());
    } else if (arg.starts_with("--benchmark")) {
      o.smoke = true;  // ctest's smoke pass
    } else {
      die("unknown argument " + arg +
          " (usage: --agents 1000,10000 --join-concurrency 32 --lab PATH --server-cpu 0 "
          "--client-cpu 1)");
    }
  }
  if (o.smoke)
    o.agents = {20};
  if (o.agents.empty() || o.join_concurrency == 0)
    die("--agents and --join-concurrency must be positive");
  return o;
}

}  // namespace
}  // namespace lab::bench

int main(int argc, char** argv) {
  using namespace lab::bench;
  const Options o = parse(argc, argv);
  // One fd per agent here and in `lab serve` (which inherits the limit).
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = nofile.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &nofile);
  const std::size_t biggest = *std::max_element(o.agents.begin(), o.agents.end());
  if (nofile.rlim_cur < biggest + 256)
    die("RLIMIT_NOFILE " + std::to_string(nofile.rlim_cur) + " is too low for " +
        std::to_string(biggest) + " agents");
  (void)std::signal(SIGPIPE, SIG_IGN);
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  CPU_SET(o.client_cpu, &cpus);
  if (!o.smoke)
    ::sched_setaffinity(0, sizeof cpus, &cpus);
  std::printf("coordinator bench: %s, lab serve on cpu %d, agents on cpu %d\n", o.lab.c_str(),
              o.server_cpu, o.client_cpu);
  (void)std::fflush(stdout);
  for (const std::size_t n : o.agents) {
    Run run(o, n);
    print(run.go(), o);
  }
  return 0;
}
