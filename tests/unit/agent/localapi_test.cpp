// The local API on a real unix socket, called by curl as root and as an unprivileged uid
// (setpriv), so SO_PEERCRED decides what each caller gets.
#include "agent/localapi/api.hpp"
#include "agent/localapi/server.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/unit/agent/bundle_maker.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <future>
#include <thread>

namespace {

using namespace lab::agent::localapi;
namespace cache = lab::agent::cache;
using lab::tests::BundleMaker;
using lab::tests::TempDir;

class IoThread {
 public:
  IoThread() : guard_(io_.get_executor()), thread_([this] { io_.run(); }) {}
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;
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

std::shared_ptr<const cache::View> view_of(const BundleMaker& maker) {
  const auto b = maker.bundle(42, {{"role", "web"}, {"env", "prod"}},
                              {{"db-password", "hunter2"}, {"open-to-nobody", "shared"}});
  auto v = std::make_shared<cache::View>();
  v->node_id = b.node_id;
  v->name = b.name;
  v->state = b.state;
  v->revision = b.revision;
  v->labels = b.labels;
  v->confirmed_at = 1000;
  for (const auto& s : b.secrets) {
    v->secrets.emplace(
        s.name,
        cache::CachedSecret{s.version, lab::shared::crypto::base64url_decode(s.sealed).value()});
  }
  return v;
}

struct CurlResult {
  int status = 0;
  std::string body;
};

class LocalApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LAB_REQUIRE_PROGRAM("curl");
    ::chmod(dir_.path().c_str(), 0755);  // the unprivileged caller must reach the socket
    state_ = std::make_shared<State>(view_of(maker_), maker_.sealing_key(), "tpm");
    std::vector<SecretAccess> rules{{"open-to-nobody", {65534}, {}}};
    api_ = std::make_shared<const Api>(state_, rules, [this] { return now_.load(); });
    server_ = std::make_unique<Server>(io_.io(), api_);
    ASSERT_TRUE(server_->listen(socket()));
  }
  void TearDown() override {
    if (server_) {
      std::promise<void> done;
      boost::asio::post(io_.io(), [&] { server_->stop([&] { done.set_value(); }); });
      done.get_future().wait_for(std::chrono::seconds(5));
    }
  }

  std::string socket() const { return (dir_ / "labd.sock").string(); }

  CurlResult curl(const std::string& path, bool as_nobody = false) const {
    std::vector<std::string> argv;
    if (as_nobody)
      argv = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
    for (const char* a : {"curl", "-s", "-w", "\n%{http_code}", "--unix-socket"})
      argv.emplace_back(a);
    argv.push_back(socket());
    argv.push_back("http://localhost" + path);
    auto r = lab::tests::run(argv, std::chrono::seconds(20));
    CurlResult out;
    const auto nl = r.output.rfind('\n');
    if (nl != std::string::npos) {
      out.body = r.output.substr(0, nl);
      out.status = std::atoi(r.output.c_str() + nl + 1);
    }
    return out;
  }

  TempDir dir_{"lab-localapi"};
  IoThread io_;
  BundleMaker maker_;
  std::atomic<std::int64_t> now_{1030};
  std::shared_ptr<State> state_;
  std::shared_ptr<const Api> api_;
  std::unique_ptr<Server> server_;
};

TEST_F(LocalApiTest, LabelsForAnyoneWithRevisionAndStaleness) {
  auto r = curl("/v1/labels");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = boost::json::parse(r.body).as_object();
  EXPECT_EQ(j.at("revision").as_int64(), 42);
  EXPECT_EQ(j.at("staleness_seconds").as_int64(), 30);
  EXPECT_EQ(j.at("labels").at("role").as_string(), "web");
  if (lab::tests::is_root() && lab::tests::have_program("setpriv")) {
    auto nobody = curl("/v1/labels", true);
    EXPECT_EQ(nobody.status, 200) << nobody.body;
    EXPECT_EQ(nobody.body, r.body);
  }
}

// The labels are kept as JSON text and spliced into the answer: it must be exactly what a JSON
// serializer makes of the same document, escapes included, and follow each new view.
TEST_F(LocalApiTest, LabelsAnswerIsTheSerializedDocumentAndFollowsNewViews) {
  cache::View v;
  v.node_id = "n-0001";
  v.revision = 43;
  v.confirmed_at = 1000;
  v.labels = {{"a.example.com/quote", "say \"hi\"\\now"},
              {"ctl", std::string("\x01\t\n", 3)},
              {"utf8", "gr\xc3\xbc\xc3\x9f"},
              {"empty", ""}};
  state_->set_view(v);
  const Api api(state_, {}, [] { return std::int64_t{1010}; });
  lab::shared::http::Request req;
  req.method = "GET";
  req.path = "/v1/labels";
  const auto r = api.handle(req);
  ASSERT_EQ(r.status, 200U);
  boost::json::object labels;
  for (const auto& [k, val] : v.labels)
    labels[k] = val;
  boost::json::object expected;
  expected["revision"] = 43;
  expected["staleness_seconds"] = 10;
  expected["labels"] = std::move(labels);
  EXPECT_EQ(r.body, boost::json::serialize(expected) + "\n");

  state_->set_reachable(true, 1010);  // a contact never goes back in time
  state_->set_last_contact(900);
  EXPECT_EQ(state_->last_contact(), 1010);
  v.labels.clear();
  state_->set_view(v);
  // An answer is not a confirmation that the cache is current.
  EXPECT_EQ(api.handle(req).body, R"({"revision":43,"staleness_seconds":10,"labels":{}})"
                                  "\n");
  state_->set_confirmed(1010);
  state_->set_confirmed(950);  // nor does a confirmation go back in time
  EXPECT_EQ(state_->last_confirmed(), 1010);
  EXPECT_EQ(api.handle(req).body, R"({"revision":43,"staleness_seconds":0,"labels":{}})"
                                  "\n");
}

TEST_F(LocalApiTest, StatusReportsProtectionAndReachability) {
  state_->set_reachable(true, 1030);
  state_->set_confirmed(1030);
  auto r = curl("/v1/status");
  ASSERT_EQ(r.status, 200);
  auto j = boost::json::parse(r.body).as_object();
  EXPECT_EQ(j.at("node_id").as_string(), "n-0001");
  EXPECT_EQ(j.at("revision").as_int64(), 42);
  EXPECT_EQ(j.at("staleness_seconds").as_int64(), 0);
  EXPECT_EQ(j.at("key_protection").as_string(), "tpm");
  EXPECT_TRUE(j.at("coordinator_reachable").as_bool());
  EXPECT_EQ(j.at("sync").as_string(), "ok");
  EXPECT_TRUE(j.at("last_error").is_null());
}

// A coordinator that answers but refuses the node is reachable, and the cache is no more
// current for it: staleness counts from the last confirmation, the status says why.
TEST_F(LocalApiTest, StatusTellsARefusalFromAConfirmation) {
  const Api api(state_, {}, [this] { return now_.load(); });
  lab::shared::http::Request req;
  req.method = "GET";
  req.path = "/v1/status";
  auto status = [&] { return boost::json::parse(api.handle(req).body).as_object(); };
  auto fresh = status();
  EXPECT_EQ(fresh.at("sync").as_string(), "pending");  // no round yet since the start
  EXPECT_EQ(fresh.at("last_confirmed").as_int64(), 1000);

  state_->set_confirmed(1020);
  state_->set_reachable(true, 1025);  // answered: 403
  state_->set_failed("refused",
                     "bundle: HTTP 403: the coordinator refuses this node's certificate");
  now_ = 1100;
  auto refused = status();
  EXPECT_EQ(refused.at("sync").as_string(), "refused");
  EXPECT_NE(refused.at("last_error").as_string().find("HTTP 403"), std::string::npos);
  EXPECT_TRUE(refused.at("coordinator_reachable").as_bool());
  EXPECT_EQ(refused.at("last_contact").as_int64(), 1025);
  EXPECT_EQ(refused.at("last_confirmed").as_int64(), 1020);
  EXPECT_EQ(refused.at("staleness_seconds").as_int64(), 80);
  const auto labels = boost::json::parse(curl("/v1/labels").body).as_object();
  EXPECT_EQ(labels.at("staleness_seconds").as_int64(), 80);

  state_->set_reachable(false, 1101);
  state_->set_failed("unreachable", "https://127.0.0.1:1: connect failed");
  EXPECT_EQ(status().at("sync").as_string(), "unreachable");
  EXPECT_FALSE(status().at("coordinator_reachable").as_bool());

  state_->set_confirmed(1100);
  auto back = status();
  EXPECT_EQ(back.at("sync").as_string(), "ok");
  EXPECT_TRUE(back.at("last_error").is_null());
  EXPECT_EQ(back.at("staleness_seconds").as_int64(), 0);
}

// GET /metrics: the status figures in the Prometheus text format, for anyone, and text that
// promtool accepts.
TEST_F(LocalApiTest, MetricsCarryTheStatusFiguresForAnyone) {
  state_->set_reachable(false, 1020);
  state_->set_failed("unreachable", "connect: refused");
  state_->set_certificate_not_after(90000);
  auto r = curl("/metrics");
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string& m = r.body;
  auto has = [&](const std::string& line) {
    return m.find("\n" + line + "\n") != std::string::npos;
  };
  EXPECT_TRUE(has("labd_revision 42")) << m;
  EXPECT_TRUE(has("labd_staleness_seconds 30")) << m;
  EXPECT_TRUE(has("labd_last_contact_timestamp_seconds 1000"))
      << m;  // an unreachable round is no contact
  EXPECT_TRUE(has("labd_coordinator_reachable 0")) << m;
  EXPECT_TRUE(has("labd_sync_status{status=\"unreachable\"} 1")) << m;
  EXPECT_TRUE(has("labd_sync_status{status=\"ok\"} 0")) << m;
  EXPECT_TRUE(has("labd_key_protected 1")) << m;
  EXPECT_TRUE(has("labd_certificate_expiry_timestamp_seconds 90000")) << m;
  EXPECT_TRUE(has("labd_labels 2")) << m;
  EXPECT_TRUE(has("labd_secrets 2")) << m;
  EXPECT_NE(m.find("labd_info{node_id=\"n-0001\","), std::string::npos) << m;
  if (lab::tests::is_root() && lab::tests::have_program("setpriv")) {
    EXPECT_EQ(curl("/metrics", true).status, 200);
  }
  if (lab::tests::have_program("promtool")) {
    const auto file = dir_.write("labd.prom", m);
    auto check = lab::tests::sh("promtool check metrics < " + file.string() + " 2>&1");
    EXPECT_EQ(check.exit_code, 0) << check.output;
    EXPECT_EQ(check.output, "");
  }
  // Never confirmed: no staleness sample rather than a made-up number.
  cache::View never;
  never.node_id = "n-0002";
  const auto fresh = std::make_shared<State>(never, maker_.sealing_key(), "degraded");
  const auto text = metrics_text(*fresh, 1030);
  EXPECT_EQ(text.find("\nlabd_staleness_seconds "), std::string::npos) << text;
  EXPECT_NE(text.find("\nlabd_key_protected 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nlabd_sync_status{status=\"pending\"} 1\n"), std::string::npos);
}

TEST_F(LocalApiTest, RootReadsSecretsOthersOnlyWhenGranted) {
  LAB_REQUIRE_ROOT();
  LAB_REQUIRE_PROGRAM("setpriv");
  auto root = curl("/v1/secrets/db-password");
  EXPECT_EQ(root.status, 200);
  EXPECT_EQ(root.body, "hunter2");
  EXPECT_EQ(curl("/v1/secrets/missing").status, 404);

  auto denied = curl("/v1/secrets/db-password", true);
  EXPECT_EQ(denied.status, 403);
  EXPECT_EQ(denied.body.find("hunter2"), std::string::npos);
  // A missing secret looks the same as a forbidden one to a caller without rights.
  EXPECT_EQ(curl("/v1/secrets/missing", true).status, 403);

  auto granted = curl("/v1/secrets/open-to-nobody", true);
  EXPECT_EQ(granted.status, 200);
  EXPECT_EQ(granted.body, "shared");
}

TEST(LocalApiAccess, RulesByUidAndGid) {
  std::vector<SecretAccess> rules{{"a", {1000}, {}}, {"b", {}, {33}}};
  using Creds = lab::shared::http::Peer::Credentials;
  EXPECT_TRUE(may_read_secret(rules, Creds{1, 0, 0}, "anything"));
  EXPECT_TRUE(may_read_secret(rules, Creds{1, 1000, 1000}, "a"));
  EXPECT_FALSE(may_read_secret(rules, Creds{1, 1000, 1000}, "b"));
  EXPECT_TRUE(may_read_secret(rules, Creds{1, 2000, 33}, "b"));
  EXPECT_FALSE(may_read_secret(rules, Creds{1, 2000, 34}, "b"));
}

TEST(LocalApiRoutes, UnknownRoutesAndMethods) {
  BundleMaker maker;
  auto state = std::make_shared<State>(view_of(maker), maker.sealing_key(), "degraded");
  Api api(state, {}, [] { return std::int64_t{2000}; });
  lab::shared::http::Request req;
  req.method = "GET";
  req.path = "/v1/nope";
  EXPECT_EQ(api.handle(req).status, 404U);
  req.method = "POST";
  req.path = "/v1/labels";
  EXPECT_EQ(api.handle(req).status, 405U);
  req.method = "GET";
  req.path = "/v1/secrets/db-password";  // no peer credentials: refused
  EXPECT_EQ(api.handle(req).status, 403U);
}

}  // namespace
