// The labd binary end to end against the TLS coordinator stand-in (tests/unit/agent), with a
// real swtpm per test and the real local API socket: join and its failures, label and secret
// pickup, offline serving across restarts and catch-up, secrets at rest, TPM binding.
#include "agent/daemon/node.hpp"
#include "shared/crypto/encoding.hpp"
#include "shared/crypto/x509.hpp"
#include "shared/json/json.hpp"
#include "tests/integration/agent/labd_fixture.hpp"
#include "tests/support/notify.hpp"
#include "tests/unit/agent/fake_coordinator.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <sys/stat.h>

#include <fstream>
#include <iterator>

namespace {

using namespace lab::tests;
namespace crypto = lab::shared::crypto;
namespace daemon = lab::agent::daemon;

std::string lines_of(const std::string& s, std::size_t n = 2) {
  std::string out;
  std::size_t pos = 0;
  for (std::size_t i = 0; i < n && pos < s.size(); ++i) {
    const auto nl = s.find('\n', pos);
    out += s.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos + 1);
    pos = nl == std::string::npos ? s.size() : nl + 1;
  }
  return out;
}

boost::json::object json_of(const std::string& text) {
  auto o = lab::shared::json::parse_object(text);
  EXPECT_TRUE(o) << text;
  return o ? *o : boost::json::object{};
}

bool contains(const std::string& haystack, std::string_view needle) {
  return !needle.empty() && haystack.find(needle) != std::string::npos;
}

// Every regular file under `dir`, concatenated with its name.
std::vector<std::pair<std::string, std::string>> files_under(const std::filesystem::path& dir) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file())
      out.emplace_back(e.path().string(), read_file(e.path()));
  }
  return out;
}

std::string pem_der(const std::string& pem) {
  std::string b64;
  std::istringstream in(pem);
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("-----"))
      b64 += line;
  }
  std::string der(b64.size(), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(der.data()),
                                reinterpret_cast<const unsigned char*>(b64.data()),
                                static_cast<int>(b64.size()));
  der.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return der;
}

class LabdTest : public ::testing::Test {
 protected:
  void SetUp() override { LAB_REQUIRE_PROGRAM("swtpm"); }

  bool wait_for_label(const LabdNode& n, const std::string& needle,
                      std::chrono::milliseconds timeout = 20s) {
    return wait_until([&] { return contains(read_file(n.run_dir() / "labels.json"), needle); },
                      timeout);
  }

  FakeCoordinator coord_;
};

TEST_F(LabdTest, JoinThenPicksUpLabelsAndSecrets) {
  LabdNode node;
  auto before = node.labd({"status", "--output", "json"});
  ASSERT_EQ(before.exit_code, 5) << before.output;  // not joined: documented in --help
  EXPECT_FALSE(json_of(before.output).contains("node_id"));

  auto joined = node.labd({"join", coord_.join_string()});
  ASSERT_EQ(joined.exit_code, 0) << joined.output;
  EXPECT_TRUE(contains(joined.output, "joined as")) << joined.output;
  auto st = json_of(node.labd({"status", "--output", "json"}).output);
  EXPECT_EQ(st["node_id"], boost::json::value(coord_.node_id()));
  EXPECT_EQ(st["daemon"], "stopped");
  EXPECT_EQ(st["key_protection"], "tpm");

  auto agent = node.start();
  ASSERT_TRUE(node.wait_ready()) << agent.output();
  coord_.publish({{"role", "web"}, {"example.com/zone", "a"}}, {{"db-password", "hunter2-xyz"}});
  ASSERT_TRUE(wait_for_label(node, "\"role\":\"web\"")) << agent.output();

  auto labels = node.labd({"labels", "--output", "json"});
  ASSERT_EQ(labels.exit_code, 0) << labels.output;
  EXPECT_EQ(json_of(labels.output)["revision"], 1);
  auto secret = node.labd({"secret", "get", "db-password"});
  ASSERT_EQ(secret.exit_code, 0) << secret.output;
  EXPECT_EQ(secret.output, "hunter2-xyz");
  struct stat sb {};
  ASSERT_EQ(::stat((node.run_dir() / "secrets" / "db-password").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 07777, 0400U);
  EXPECT_EQ(read_file(node.run_dir() / "secrets" / "db-password"), "hunter2-xyz");
  EXPECT_TRUE(contains(read_file(node.run_dir() / "labels.env"), "LAB_LABEL_ROLE=web"));
  EXPECT_TRUE(contains(read_file(node.dir() / "facts" / "lab.json"), "lab_labels"));
  auto missing = node.labd({"secret", "get", "not-granted"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(contains(missing.output, "no secret 'not-granted'")) << missing.output;
  EXPECT_FALSE(std::filesystem::exists(node.run_dir() / "secrets" / "not-granted"));

  auto running = json_of(node.labd({"status", "--output", "json"}).output);
  EXPECT_EQ(running["daemon"], "running");
  EXPECT_EQ(running["revision"], 1);
  EXPECT_EQ(running["coordinator_reachable"], true);
  EXPECT_EQ(agent.stop(), 0);
}

TEST_F(LabdTest, JoinFailuresAreOneLineWithAHint) {
  LabdNode node;
  struct Case {
    std::string join_string;
    std::string reason;
    std::string hint;
  };
  auto used = coord_.join_string();
  {
    LabdNode other;
    ASSERT_EQ(other.labd({"join", used}).exit_code, 0);
  }
  FakeCoordinator gone;
  auto unreachable = gone.join_string();
  gone.pause();
  const std::vector<Case> cases = {
      {"not-a-join-string", "not a join string", "lab1:"},
      {used, "invalid token", "lab token create"},
      {coord_.join_string_with_unknown_token(), "invalid token", "already used or expired"},
      {coord_.join_string_with_wrong_pin(), "does not match the pin", "not the coordinator"},
      {unreachable, "cannot reach", "network path"},
  };
  const int joins = coord_.joins();
  for (const auto& c : cases) {
    auto r = node.labd({"join", c.join_string, "--timeout", "5"});
    EXPECT_EQ(r.exit_code, 1) << r.output;
    const auto first = lines_of(r.output, 1);
    EXPECT_TRUE(first.starts_with("labd: error: ")) << r.output;
    EXPECT_TRUE(contains(first, c.reason)) << c.reason << " in " << r.output;
    EXPECT_TRUE(contains(r.output, "hint: ")) << r.output;
    EXPECT_TRUE(contains(r.output, c.hint)) << c.hint << " in " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 2) << r.output;
    EXPECT_FALSE(contains(r.output, "(lab.")) << "internal codes only with --debug: " << r.output;
  }
  auto debug = node.labd({"join", "not-a-join-string", "--debug"});
  EXPECT_TRUE(contains(debug.output, "(lab.")) << debug.output;
  EXPECT_EQ(coord_.joins(), joins);  // the wrong pin never reached the token check

  ASSERT_EQ(node.labd({"join", coord_.join_string()}).exit_code, 0);
  auto twice = node.labd({"join", coord_.join_string()});
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_TRUE(contains(twice.output, "already joined as")) << twice.output;
  EXPECT_TRUE(contains(twice.output, "hint: 'labd rejoin <join-string>'")) << twice.output;
}

// The join string is a credential and a command line is readable by every local user: `labd join
// -` reads it from stdin and --join-file from a file. Without one it is a usage error (2).
TEST_F(LabdTest, JoinStringComesFromStdinOrAFileToStayOutOfPs) {
  LabdNode node;
  const auto labd = [&](const std::string& args) {
    return sh("TSS2_LOG=all+none " + labd_binary().string() + " --config " +
                  node.config().string() + " " + args,
              60s);
  };
  const auto help = node.labd({"join", "--help"});
  EXPECT_TRUE(contains(help.output, "visible to every local user")) << help.output;
  struct Case {
    std::string args;
    std::string error;
  };
  const std::vector<Case> refused = {
      {"join - < /dev/null", "no join string on stdin"},
      {"join - <<'EOF'\n\n  \nEOF", "no join string on stdin"},
      {"join - < " + node.dir().write("long", std::string(5000, 'x')).string(), "too long"},
      {"rejoin --join-file " + (node.dir() / "missing").string(), "cannot read --join-file"},
      {"join", "no join string"},
      {"join lab1:x --join-file /dev/null", "excludes"},
      {"join lab1:x --timeout -1", "--timeout"},
      {"rejoin lab1:x --timeout 0", "--timeout"},
      {"join lab1:x --timeout soon", "--timeout"},
  };
  for (const auto& c : refused) {
    const auto r = labd(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << ": " << r.output;
    EXPECT_TRUE(contains(r.output, c.error)) << c.args << ": " << r.output;
  }
  EXPECT_EQ(coord_.joins(), 0);

  const auto js = node.dir().write("join-string", coord_.join_string() + "\n");
  const auto joined = labd("join - < " + js.string());
  ASSERT_EQ(joined.exit_code, 0) << joined.output;
  EXPECT_TRUE(contains(joined.output, "joined as")) << joined.output;
  const auto again = node.dir().write("rejoin-string", "  " + coord_.join_string() + " \r\n");
  const auto rejoined = node.labd({"rejoin", "--join-file", again.string()});
  ASSERT_EQ(rejoined.exit_code, 0) << rejoined.output;
  EXPECT_TRUE(contains(rejoined.output, "rejoined as")) << rejoined.output;
}

// The unit does not restart on 78 (RestartPreventExitStatus=78): a node that has not joined
// must not come back every two seconds, and must say why in one journal line.
TEST_F(LabdTest, RunBeforeJoinExitsWithExConfigAndOneLineSayingWhy) {
  LabdNode node;
  auto r = node.labd({"run"}, 20s);
  EXPECT_EQ(r.exit_code, 78) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_TRUE(contains(r.output, "has not joined")) << r.output;
  EXPECT_TRUE(contains(r.output, "labd join <join-string>")) << r.output;
  EXPECT_FALSE(std::filesystem::exists(node.run_dir() / "labd.sock"));

  // Joined, the same command serves; a damaged keystore is still an ordinary failure (1).
  ASSERT_EQ(node.labd({"join", coord_.join_string()}).exit_code, 0);
  auto agent = node.start();
  ASSERT_TRUE(node.wait_ready()) << agent.output();
  EXPECT_EQ(agent.stop(), 0);
  node.replace_tpm(std::make_unique<Swtpm>());  // another machine's TPM: the key does not unseal
  auto other = node.labd({"run"}, 20s);
  EXPECT_EQ(other.exit_code, 1) << other.output;
}

// A configuration that does not load is a usage error (2) for every command, as for `lab serve`,
// naming the key and where the value came from; systemd does not restart on it.
TEST_F(LabdTest, AConfigurationErrorExitsTwoNamingTheKey) {
  LabdNode node;
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--set", "sync.wait=5x", "status"},
        std::vector<std::string>{"--set", "sync.wait=5x", "run"},
        std::vector<std::string>{"--set", "sync.wait=5x", "labels"},
        std::vector<std::string>{"--set", "sync.wiat=5s", "status"},
        std::vector<std::string>{"--set", "nonsense", "status"}}) {
    auto r = node.labd(args, 20s);
    EXPECT_EQ(r.exit_code, 2) << args[1] << " " << args[2] << ": " << r.output;
    EXPECT_TRUE(r.output.starts_with("labd: error: ")) << r.output;
  }
  auto bad = node.labd({"--set", "sync.wait=5x", "status"});
  EXPECT_TRUE(contains(bad.output, "sync.wait")) << bad.output;
  EXPECT_TRUE(contains(bad.output, "--set")) << bad.output;
  auto typo = node.labd({"--set", "sync.wiat=5s", "status"});
  EXPECT_TRUE(contains(typo.output, "sync.wait")) << typo.output;  // did you mean
}

// labd speaks systemd's notify protocol itself: READY=1, WATCHDOG=1 at half of WATCHDOG_USEC
// and STOPPING=1, as datagrams on $NOTIFY_SOCKET (received here as systemd would).
TEST_F(LabdTest, TellsTheServiceManagerReadyWatchdogAndStopping) {
  LabdNode node;
  ASSERT_EQ(node.labd({"join", coord_.join_string()}).exit_code, 0);
  const auto path = node.dir() / "notify.sock";
  NotifySocket notify(path);
  ChildProcess::Options o;
  o.argv = {labd_binary().string(), "--config", node.config().string(), "run"};
  o.env = {{"TSS2_LOG", "all+none"}, {"NOTIFY_SOCKET", path.string()}, {"WATCHDOG_USEC", "400000"}};
  auto agent = ChildProcess::start(std::move(o));
  EXPECT_TRUE(notify.receive_until("READY=1")) << agent.output();
  EXPECT_TRUE(notify.receive_until("WATCHDOG=1")) << agent.output();
  EXPECT_EQ(agent.stop(), 0);
  EXPECT_TRUE(notify.receive_until("STOPPING=1")) << agent.output();
}

TEST_F(LabdTest, WithoutATpmJoinRefusesUnlessFileModeIsChosen) {
  LabdNode node({}, /*with_tpm=*/false);
  const auto js = coord_.join_string();
  auto refused = node.labd({"join", js});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_TRUE(contains(refused.output, "key_protection = \"file\"")) << refused.output;
  EXPECT_EQ(coord_.joins(), 0);  // the token is still good

  node.write_config("key_protection = \"file\"");
  auto joined = node.labd({"join", js});
  ASSERT_EQ(joined.exit_code, 0) << joined.output;
  EXPECT_TRUE(contains(joined.output, "degraded")) << joined.output;
  struct stat sb {};
  ASSERT_EQ(::stat((node.data_dir() / "datakey.key").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600U);
  auto agent = node.start();
  ASSERT_TRUE(node.wait_ready()) << agent.output();
  EXPECT_EQ(json_of(node.labd({"status", "--output", "json"}).output)["key_protection"],
            "degraded");
}

TEST_F(LabdTest, OfflineReadsComeFromTheCacheAcrossRestartsThenCatchUp) {
  LabdNode node;
  ASSERT_EQ(node.labd({"join", coord_.join_string()}).exit_code, 0);
  auto agent = node.start();
  ASSERT_TRUE(node.wait_ready()) << agent.output();
  coord_.publish({{"role", "db"}}, {{"pw", "first-value"}});
  ASSERT_TRUE(wait_for_label(node, "\"role\":\"db\"")) << agent.output();

  coord_.pause();
  // The agent notices on its next poll (within sync.wait) and keeps serving.
  ASSERT_TRUE(wait_until(
      [&] {
        return json_of(node.labd({"status", "--output", "json"}).output)["coordinator_reachable"] ==
               false;
      },
      20s));
  EXPECT_EQ(agent.stop(), 0);

  // Restarted while the coordinator stays away: same revision, staleness grows.
  agent = node.start();
  ASSERT_TRUE(node.wait_ready()) << agent.output();
  std::this_thread::sleep_for(1100ms);  // staleness is in whole seconds
  auto labels = json_of(node.labd({"labels", "--output", "json"}).output);
  EXPECT_EQ(labels["revision"], 1);
  EXPECT_GE(labels["staleness_seconds"].as_int64(), 1);
  EXPECT_EQ(labels["labels"].as_object()["role"], "db");
  EXPECT_EQ(node.labd({"secret", "get", "pw"}).output, "first-value");
  auto text = node.labd({"labels"});
  EXPECT_TRUE(contains(text.output, "# revision 1, confirmed current by the coordinator"))
      << text.output;
  // Served, but not kept current: `labd status` says so in "sync" and its exit status.
  ASSERT_TRUE(wait_until(
      [&] {
        return json_of(node.labd({"status", "--output", "json"}).output)["sync"] == "unreachable";
      },
      20s))
      << agent.output();
  EXPECT_EQ(node.labd({"status"}).exit_code, 4);

  // Also with the agent stopped: root reads straight from the cache.
  EXPECT_EQ(agent.stop(), 0);
  auto cold = node.labd({"labels"});
  EXPECT_EQ(cold.exit_code, 0) << cold.output;
  EXPECT_TRUE(contains(cold.output, "labd is not running")) << cold.output;
  EXPECT_TRUE(contains(cold.output, "role=db")) << cold.output;
  agent = node.start();
  ASSERT_TRUE(node.wait_ready());

  // Back: a newer revision arrives within one backoff period (cap 2 s) plus a poll.
  coord_.publish({{"role", "db"}, {"phase", "two"}}, {{"pw", "second-value"}});
  const auto back = std::chrono::steady_clock::now();
  coord_.resume();
  ASSERT_TRUE(wait_for_label(node, "\"phase\":\"two\"", 10s)) << agent.output();
  EXPECT_LT(std::chrono::steady_clock::now() - back, 4s);
  EXPECT_EQ(node.labd({"secret", "get", "pw"}).output, "second-value");
  // Fresh again: the last answer is at most one long-poll (sync.wait = 2 s) old.
  EXPECT_LE(
      json_of(node.labd({"labels", "--output", "json"}).output)["staleness_seconds"].as_int64(), 3);
}

TEST_F(LabdTest, NothingSecretIsOnDiskInClear) {
  LabdNode node;
  ASSERT_EQ(node.labd({"join", coord_.join_string()}).exit_code, 0);
  const std::string secret = "s3cr3t-value-that-must-not-leak-7f1c";
  {
    auto agent = node.start();
    ASSERT_TRUE(node.wait_ready());
    coord_.publish({{"role", "vault"}}, {{"token", secret}});
    ASSERT_TRUE(wait_for_label(node, "vault"));
    EXPECT_EQ(agent.stop(), 0);
  }
  auto opened = daemon::open_node(node.settings());
  ASSERT_TRUE(opened) << opened.error().message();
  const auto& id = opened->identity;
  const std::string der = pem_der(id.tls_key_pem);
  ASSERT_GT(der.size(), 60U);
  const std::string sealing(crypto::as_chars(id.sealing_key));
  std::vector<std::string> pem_lines;
  std::istringstream in(id.tls_key_pem);
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("-----"))
      pem_lines.push_back(line);
  }
  opened->cache.reset();
  const auto files = files_under(node.data_dir());
  ASSERT_GE(files.size(), 3U);
  for (const auto& [name, content] : files) {
    EXPECT_FALSE(contains(content, secret)) << name;
    EXPECT_FALSE(contains(content, crypto::base64url_encode(crypto::as_bytes(secret)))) << name;
    EXPECT_FALSE(contains(content, der)) << name;
    EXPECT_FALSE(contains(content, der.substr(der.size() - 40))) << name;
    EXPECT_FALSE(contains(content, sealing)) << name;
    for (const auto& l : pem_lines)
      EXPECT_FALSE(contains(content, l)) << name;
  }
}

TEST_F(LabdTest, ACopyOfTheDataDirOnAnotherTpmOpensNothingUntilRejoin) {
  LabdNode node;
  ASSERT_EQ(node.labd({"join", coord_.join_string()}).exit_code, 0);
  {
    auto agent = node.start();
    ASSERT_TRUE(node.wait_ready());
    coord_.publish({{"role", "copy"}}, {{"k", "copied-secret"}});
    ASSERT_TRUE(wait_for_label(node, "copy"));
    EXPECT_EQ(agent.stop(), 0);
  }
  LabdNode thief;  // another machine: its own swtpm state
  std::filesystem::copy(node.data_dir(), thief.data_dir(),
                        std::filesystem::copy_options::recursive);
  auto status = thief.labd({"status", "--output", "json"});
  EXPECT_TRUE(contains(status.output, "another TPM") || contains(status.output, "other TPM"))
      << status.output;
  auto labels = thief.labd({"labels"});
  EXPECT_EQ(labels.exit_code, 1);
  auto secret = thief.labd({"secret", "get", "k"});
  EXPECT_EQ(secret.exit_code, 1);
  EXPECT_FALSE(contains(secret.output, "copied-secret"));
  auto run = thief.labd({"run"}, 30s);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_TRUE(contains(run.output, "rejoin")) << run.output;

  // Rejoin on the new machine starts over with a fresh key and cache.
  auto rejoined = thief.labd({"rejoin", coord_.join_string()});
  ASSERT_EQ(rejoined.exit_code, 0) << rejoined.output;
  auto agent = thief.start();
  ASSERT_TRUE(thief.wait_ready()) << agent.output();
  coord_.publish({{"role", "rejoined"}});
  ASSERT_TRUE(wait_for_label(thief, "rejoined")) << agent.output();
}

TEST_F(LabdTest, AChangedPcrBlocksUnsealNamingThePcrsAndRejoinRecovers) {
  LAB_REQUIRE_PROGRAM("tpm2_pcrextend");
  LabdNode node("tpm_pcrs = [16]");
  ASSERT_EQ(node.labd({"join", coord_.join_string()}).exit_code, 0);
  {
    auto agent = node.start();
    ASSERT_TRUE(node.wait_ready());
    coord_.publish({{"role", "pcr"}});
    ASSERT_TRUE(wait_for_label(node, "pcr"));
    EXPECT_EQ(agent.stop(), 0);
  }
  const auto cache_before = read_file(node.data_dir() / "cache.db");
  const auto key_before = read_file(node.data_dir() / "datakey.sealed");
  ASSERT_TRUE(node.tpm()->extend_pcr(16));

  auto run = node.labd({"run"}, 30s);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_TRUE(contains(run.output, "PCR 16 changed since the data key was sealed")) << run.output;
  auto status = node.labd({"status", "--output", "json"});
  EXPECT_TRUE(contains(status.output, "PCR 16 changed since the data key was sealed"))
      << status.output;
  EXPECT_EQ(read_file(node.data_dir() / "cache.db"), cache_before);
  EXPECT_EQ(read_file(node.data_dir() / "datakey.sealed"), key_before);

  auto rejoined = node.labd({"rejoin", coord_.join_string()});
  ASSERT_EQ(rejoined.exit_code, 0) << rejoined.output;
  auto agent = node.start();
  ASSERT_TRUE(node.wait_ready()) << agent.output();
  coord_.publish({{"role", "after-rejoin"}});
  ASSERT_TRUE(wait_for_label(node, "after-rejoin")) << agent.output();
}

}  // namespace
