// `lab bootstrap ssh` end to end: a real `lab serve` coordinator on loopback, real sshd "hosts"
// (each in its own mount and UTS namespace, so each has its own hostname, /usr/local, /etc/lab,
// /var/lib/labd, /run/lab, /tmp and a second, unprivileged user), the real labd uploaded,
// installed under its supervisor and joined.
#include "shared/protocol/protocol.hpp"
#include "tests/integration/bootstrap/ssh/sshd_fixture.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace lab::tests;
namespace fs = std::filesystem;
namespace json = boost::json;

// A coordinator of its own per test: `lab serve` with only the coordinator listening.
class Coordinator {
 public:
  Coordinator() : port_(free_tcp_port()) {
    server_.emplace(ChildProcess::start(
        {.argv = {lab_binary().string(), "serve", "--data-dir", data_dir().string(), "--set",
                  "coordinator.listen=127.0.0.1:" + std::to_string(port_)},
         .env = {},
         .netns = {},
         .log = {}}));
    if (!wait_until([&] { return server_->output().find("msg=ready") != std::string::npos; },
                    30s)) {
      throw std::runtime_error("lab serve did not start: " + server_->output());
    }
  }
  [[nodiscard]] fs::path data_dir() const { return dir_.path() / "data"; }
  [[nodiscard]] std::string output() const { return server_->output(); }

  /// `lab <args> --output json` against this coordinator, parsed.
  [[nodiscard]] json::value query(std::vector<std::string> args) const {
    args.insert(args.begin(), lab_binary().string());
    args.insert(args.end(), {"--data-dir", data_dir().string(), "--output", "json"});
    const auto r = run(args, 30s);
    if (r.exit_code != 0) {
      throw std::runtime_error("lab command failed: " + r.output);
    }
    return json::parse(r.output);
  }

 private:
  TempDir dir_{"lab-coord"};
  int port_;
  std::optional<ChildProcess> server_;
};

// Several hosts that accept one operator key.
class Fleet {
 public:
  explicit Fleet(int count, const std::string& prefix = "host") {
    const auto r = run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        (dir_.path() / "operator_key").string()});
    if (r.exit_code != 0) {
      throw std::runtime_error("ssh-keygen failed: " + r.output);
    }
    for (int i = 1; i <= count; ++i) {
      const std::string name = prefix + (i < 10 ? "0" : "") + std::to_string(i);
      hosts_.push_back(std::make_unique<SshServer>(SshServer::Options{
          .hostname = name, .listen = "127.0.0.1", .authorized_key = key().string() + ".pub"}));
      names_.emplace_back(name);
    }
  }
  [[nodiscard]] fs::path key() const { return dir_.path() / "operator_key"; }
  [[nodiscard]] fs::path known_hosts() const { return dir_.path() / "known_hosts"; }
  [[nodiscard]] SshServer& host(std::size_t i) { return *hosts_.at(i); }
  [[nodiscard]] const std::string& name(std::size_t i) const { return names_.at(i); }
  [[nodiscard]] std::size_t size() const { return hosts_.size(); }
  [[nodiscard]] std::vector<std::string> targets() const {
    std::vector<std::string> out;
    for (const auto& h : hosts_) {
      out.push_back(h->target());
    }
    return out;
  }

 private:
  TempDir dir_{"lab-fleet"};
  std::vector<std::unique_ptr<SshServer>> hosts_;
  std::vector<std::string> names_;
};

// The labd every host gets, without symbols: a sanitizer build is hundreds of MiB.
const std::string& agent_to_install() {
  static const std::string kPath = [] {
    static TempDir dir("lab-agent-bin");
    const auto out = dir.path() / "labd";
    const auto r = run({"strip", "-o", out.string(), labd_binary().string()});
    return r.exit_code == 0 ? out.string() : labd_binary().string();
  }();
  return kPath;
}

struct Bootstrap {
  int exit_code = -1;
  std::string output;
  json::array hosts;  // the --json result, one object per host in the order given
  double seconds = 0;

  [[nodiscard]] std::string field(std::size_t i, const char* key) const {
    const auto& v = hosts.at(i).as_object().at(key);
    return v.is_string() ? std::string(v.as_string()) : json::serialize(v);
  }
};

Bootstrap bootstrap(const Coordinator& coord, const Fleet& fleet, std::vector<std::string> targets,
                    std::vector<std::string> extra, const std::string& agent = agent_to_install()) {
  std::vector<std::string> argv = {
      lab_binary().string(), "bootstrap", "ssh", "--data-dir", coord.data_dir().string(),
      "--identity", fleet.key().string(), "--known-hosts", fleet.known_hosts().string(),
      "--accept-new", "--agent", agent, "--agent-set", "key_protection=file", "--agent-set",
      // Each host's /run/lab is its own; /etc/puppetlabs is not.
      "render.facts_file=/run/lab/facts.json", "--labels", "role=web,site=lab", "--json"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.insert(argv.end(), targets.begin(), targets.end());
  const auto started = std::chrono::steady_clock::now();
  auto r = run(argv, 600s);
  Bootstrap b;
  b.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  b.exit_code = r.exit_code;
  b.output = r.output;
  // The JSON document is the one line of stdout that starts with '['.
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("[{") || line == "[]") {
      b.hosts = json::parse(line).as_array();
    }
  }
  return b;
}

std::set<std::string> node_names_with(const Coordinator& coord, const std::string& key,
                                      const std::string& value) {
  std::set<std::string> out;
  const auto nodes = coord.query({"node", "list"});
  for (const auto& n : nodes.as_array()) {
    const auto& o = n.as_object();
    const auto* labels = o.if_contains("labels");
    if (labels != nullptr && labels->is_object() && labels->as_object().contains(key) &&
        labels->as_object().at(key) == value.c_str() && o.at("state") != "revoked") {
      out.insert(std::string(o.at("name").as_string()));
    }
  }
  return out;
}

// Several hosts at once; LAB_SSH_HOSTS=10 (with a Release build) gives the README's figure.
TEST(BootstrapSsh, SeveralHostsAtOnceJoinAndARerunSkipsThem) {
  if (!is_root() || !have_program("/usr/sbin/sshd")) {
    GTEST_SKIP() << "needs root (mount and UTS namespaces) and openssh-server";
  }
  const char* env = std::getenv("LAB_SSH_HOSTS");  // NOLINT(concurrency-mt-unsafe)
  const int hosts = env != nullptr ? std::max(1, std::atoi(env)) : 4;
  Coordinator coord;
  Fleet fleet(hosts);

  const std::string parallel = std::to_string(hosts);
  auto first = bootstrap(coord, fleet, fleet.targets(), {"--parallel", parallel});
  ASSERT_EQ(first.exit_code, 0) << first.output << coord.output();
  ASSERT_EQ(first.hosts.size(), fleet.size()) << first.output;
  std::set<std::string> expected;
  for (std::size_t i = 0; i < fleet.size(); ++i) {
    EXPECT_EQ(first.field(i, "status"), "joined") << first.output;
    expected.insert(fleet.name(i));
  }
  std::cout << "bootstrap of " << fleet.size() << " hosts with --parallel " << parallel << ": "
            << first.seconds << " s\n";

  // Every host is a node with the labels, and its agent runs and serves them locally.
  EXPECT_EQ(node_names_with(coord, "role", "web"), expected);
  for (std::size_t i = 0; i < fleet.size(); ++i) {
    const auto socket = fleet.host(i).root() / "run/lab/labd.sock";
    EXPECT_TRUE(wait_until(
        [&] {
          auto r =
              run({"curl", "-sf", "--unix-socket", socket.string(), "http://labd/v1/labels"}, 5s);
          return r.exit_code == 0 && r.output.find("\"role\"") != std::string::npos &&
                 r.output.find("\"web\"") != std::string::npos;
        },
        30s))
        << fleet.name(i) << ": the agent does not serve its labels";
  }
  // The host keys were recorded, so the second run needs no --accept-new (still passed: the
  // run must not depend on it) and finds every host already joined.
  std::ifstream known(fleet.known_hosts());
  const std::string recorded((std::istreambuf_iterator<char>(known)),
                             std::istreambuf_iterator<char>());
  EXPECT_NE(recorded.find("ssh-ed25519"), std::string::npos);

  auto again = bootstrap(coord, fleet, fleet.targets(), {"--parallel", parallel});
  ASSERT_EQ(again.exit_code, 0) << again.output;
  for (std::size_t i = 0; i < fleet.size(); ++i) {
    EXPECT_EQ(again.field(i, "status"), "skipped") << again.output;
    EXPECT_NE(again.field(i, "message").find("already joined"), std::string::npos);
  }
  EXPECT_EQ(coord.query({"node", "list"}).as_array().size(), fleet.size())
      << "a re-run must not create nodes";
}

// The installer's upload directories left in a host's /tmp.
std::vector<std::string> upload_dirs(const SshServer& host) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(host.root() / "tmp")) {
    if (e.path().filename().string().starts_with("lab-install.")) {
      out.push_back(e.path().filename());
    }
  }
  return out;
}

// Whether `text` holds a join string for one of `tokens` (the machine runs other tests' joins).
bool holds_join_string(const std::string& text, const std::set<std::string>& tokens) {
  static const std::regex kJoinString("lab1:[A-Za-z0-9_-]+");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kJoinString);
       it != std::sregex_iterator(); ++it) {
    const auto js = lab::shared::protocol::parse_join_string(it->str());
    if (js && tokens.contains(js->token.id)) {
      return true;
    }
  }
  return false;
}

std::set<std::string> token_ids(const Coordinator& coord) {
  std::set<std::string> out;
  const auto tokens = coord.query({"token", "list"});
  for (const auto& t : tokens.as_array()) {
    out.insert(std::string(t.as_object().at("id").as_string()));
  }
  return out;
}

// The host's other user, watching an install with what any local user has: every process's
// command line, and /tmp with whatever in it can be listed or read. It first plants files at
// the fixed names the installer once uploaded to. What it saw goes to /tmp/loot on the host:
// "ps" (command lines holding a join string), "join" (the command line of the install's own
// `labd join`, see agent_that_waits_to_be_seen) and "seen" (one line per directory met, and
// "listed …" / "read …" for what it could get into).
class Intruder {
 public:
  explicit Intruder(SshServer& host) : host_(host), watcher_(host.start_as_local_user(kWatcher)) {
    if (!wait_until([&] { return fs::exists(loot() / "started"); }, 30s)) {
      throw std::runtime_error("the watcher did not start: " + watcher_.output());
    }
  }
  Intruder(const Intruder&) = delete;
  Intruder& operator=(const Intruder&) = delete;
  ~Intruder() { stop(); }

  void stop() {
    if (!stopped_) {
      std::ofstream(loot() / "stop").flush();
      watcher_.wait(10s);
      stopped_ = true;
    }
  }
  [[nodiscard]] fs::path loot() const { return host_.root() / "tmp/loot"; }
  [[nodiscard]] std::string read(const char* name) const { return read_file(loot() / name); }
  [[nodiscard]] std::string output() const { return watcher_.output(); }

 private:
  // At most 6000 rounds (~20 ms apart) or until /tmp/loot/stop appears.
  static constexpr const char* kWatcher = R"(
loot=/tmp/loot
mkdir -m 0755 $loot || exit 1
for f in /tmp/labd.deb /tmp/labd.deb.lab-upload; do : > $f && chmod 0666 $f || exit 1; done
: > $loot/ps; : > $loot/join; : > $loot/seen
note() { grep -qxF "$1" $loot/seen || echo "$1" >> $loot/seen; }
touch $loot/started
i=0
while [ $i -lt 6000 ] && [ ! -e $loot/stop ]; do
  ps -eww -o args= | grep 'lab1:[A-Za-z0-9_-]' >> $loot/ps
  if [ -s $loot/join.pid ] && tr '\0' ' ' < /proc/$(cat $loot/join.pid)/cmdline >> $loot/join
  then
    echo >> $loot/join
    touch $loot/saw-join
  fi
  for p in /tmp/* /tmp/.[!.]*; do
    case $p in
      $loot) ;;
      /tmp/labd.deb|/tmp/labd.deb.lab-upload) [ -s $p ] && [ -r $p ] && note "read $p" ;;
      *)
        if [ -d $p ]; then
          note "dir $p"
          ls -A $p > /dev/null 2>&1 && note "listed $p"
          for f in $p/* $p/labd $p/labd.deb; do
            [ -f $f ] && cat $f > /dev/null 2>&1 && note "read $f"
          done
        elif [ -f $p ] && cat $p > /dev/null 2>&1; then
          note "read $p"
        fi ;;
    esac
  done
  i=$((i + 1))
  sleep 0.02
done
)";

  SshServer& host_;
  ChildProcess watcher_;
  bool stopped_ = false;
};

// An agent that runs the real labd, except that `labd join` and `labd rejoin` first wait (up to
// 10 s) for the Intruder to have read their command line: then whether it saw the join string
// does not depend on how fast the join is. The real labd is copied into the host's own /usr/local:
// the build may live under /tmp, which the host does not see.
fs::path agent_that_waits_to_be_seen(const TempDir& dir, SshServer& host) {
  const auto real = host.root() / "usr/local/lib/lab-test/labd";
  fs::create_directories(real.parent_path());
  fs::copy_file(agent_to_install(), real, fs::copy_options::overwrite_existing);
  auto path = dir.write("labd",
                        "#!/bin/sh\n"
                        "case \"$1\" in join|rejoin)\n"
                        "  echo $$ > /tmp/loot/join.pid\n"
                        "  i=0\n"
                        "  while [ ! -e /tmp/loot/saw-join ] && [ $i -lt 200 ]; do\n"
                        "    sleep 0.05; i=$((i + 1))\n"
                        "  done\n"
                        "  rm -f /tmp/loot/join.pid /tmp/loot/saw-join ;;\n"
                        "esac\n"
                        "exec /usr/local/lib/lab-test/labd \"$@\"\n");
  fs::permissions(path, fs::perms::owner_all);
  return path;
}

// What the Intruder saw of an install: not the join string, nothing it could list or read.
void expect_nothing_seen(const Intruder& intruder, const std::set<std::string>& tokens,
                         const char* verb) {
  const std::string join = intruder.read("join");
  EXPECT_NE(join.find(std::string("labd ") + verb), std::string::npos)
      << "the watcher never saw `labd " << verb << "` run: " << join << intruder.output();
  EXPECT_FALSE(holds_join_string(join, tokens)) << "join string on the command line: " << join;
  const std::string ps = intruder.read("ps");
  EXPECT_FALSE(holds_join_string(ps, tokens)) << ps.substr(0, ps.find('\n'));
  const std::string seen = intruder.read("seen");
  std::cout << "the other user met:\n" << seen;
  EXPECT_EQ(seen.find("listed "), std::string::npos) << seen;
  EXPECT_EQ(seen.find("read "), std::string::npos) << seen;
}

// A second, unprivileged user of the host watches a join and then a rejoin: it sees neither the
// join string (it goes on stdin, not on a command line) nor the upload (a fresh root-only
// directory), and the fixed names it planted in /tmp are not written through.
TEST(BootstrapSsh, AnotherUserOfTheHostSeesNeitherTheJoinStringNorTheUpload) {
  if (!is_root() || !have_program("/usr/sbin/sshd") || !have_program("nsenter") ||
      !have_program("setpriv")) {
    GTEST_SKIP() << "needs root (mount and UTS namespaces), openssh-server and util-linux";
  }
  Coordinator coord;
  Fleet fleet(1);
  TempDir tools("lab-agent");
  const auto agent = agent_that_waits_to_be_seen(tools, fleet.host(0));
  {
    Intruder intruder(fleet.host(0));
    auto r = bootstrap(coord, fleet, fleet.targets(), {}, agent.string());
    intruder.stop();
    ASSERT_EQ(r.exit_code, 0) << r.output << coord.output();
    EXPECT_EQ(r.field(0, "status"), "joined") << r.output;
    expect_nothing_seen(intruder, token_ids(coord), "join");
    EXPECT_EQ(read_file(intruder.loot().parent_path() / "labd.deb"), "");
    EXPECT_EQ(read_file(intruder.loot().parent_path() / "labd.deb.lab-upload"), "");
    EXPECT_TRUE(upload_dirs(fleet.host(0)).empty());
    fs::remove_all(intruder.loot());
  }

  // Revoked, the node is installed again and rejoins: the same holds for `labd rejoin`.
  const auto revoked = run({lab_binary().string(), "node", "revoke", fleet.name(0), "--data-dir",
                            coord.data_dir().string()},
                           30s);
  ASSERT_EQ(revoked.exit_code, 0) << revoked.output;
  Intruder intruder(fleet.host(0));
  auto again = bootstrap(coord, fleet, fleet.targets(), {}, agent.string());
  intruder.stop();
  ASSERT_EQ(again.exit_code, 0) << again.output << coord.output();
  EXPECT_EQ(again.field(0, "status"), "joined") << again.output;
  expect_nothing_seen(intruder, token_ids(coord), "rejoin");
  EXPECT_TRUE(upload_dirs(fleet.host(0)).empty());
}

// --package installs with the host's apt, which a test host's package database cannot take: it
// is proved on a booted Debian system in tests/package/vm_test.sh (ctest package.systemd_vm).

TEST(BootstrapSsh, UnknownHostKeyIsRefusedWithoutAcceptNew) {
  if (!is_root() || !have_program("/usr/sbin/sshd")) {
    GTEST_SKIP() << "needs root (mount and UTS namespaces) and openssh-server";
  }
  Coordinator coord;
  Fleet fleet(1);
  auto r = run(
      {lab_binary().string(), "bootstrap", "ssh", "--data-dir", coord.data_dir().string(),
       "--identity", fleet.key().string(), "--known-hosts", fleet.known_hosts().string(), "--agent",
       labd_binary().string(), "--labels", "role=web", "--json", fleet.targets().front()},
      60s);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("SHA256:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("accept-new"), std::string::npos) << r.output;
  EXPECT_TRUE(coord.query({"token", "list"}).as_array().empty()) << "no token for a refused host";
  EXPECT_FALSE(fs::exists(fleet.host(0).root() / "usr/local/bin/labd"));
}

TEST(BootstrapSsh, CanaryFailureStopsTheBatchAndIsRolledBack) {
  if (!is_root() || !have_program("/usr/sbin/sshd")) {
    GTEST_SKIP() << "needs root (mount and UTS namespaces) and openssh-server";
  }
  Coordinator coord;
  Fleet fleet(4);
  // The canary cannot take the agent: its /usr/local/bin is a file, not a directory.
  fs::remove_all(fleet.host(0).root() / "usr/local/bin");
  std::ofstream(fleet.host(0).root() / "usr/local/bin") << "not a directory\n";

  auto r = bootstrap(coord, fleet, fleet.targets(), {"--canary", "1", "--parallel", "3"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  ASSERT_EQ(r.hosts.size(), 4U) << r.output;
  EXPECT_EQ(r.field(0, "status"), "failed");
  EXPECT_EQ(r.field(0, "step"), "upload") << r.output;
  for (std::size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(r.field(i, "status"), "not_started") << r.output;
    EXPECT_FALSE(fs::exists(fleet.host(i).root() / "usr/local/bin/labd"));
  }
  EXPECT_TRUE(coord.query({"node", "list"}).as_array().empty());
  EXPECT_FALSE(fs::exists(fleet.host(0).root() / "etc/lab/labd.toml")) << "rolled back";
  EXPECT_TRUE(upload_dirs(fleet.host(0)).empty()) << "rolled back";
}

TEST(BootstrapSsh, HostThatDiesMidInstallIsRolledBackAndJoinsOnARerun) {
  if (!is_root() || !have_program("/usr/sbin/sshd")) {
    GTEST_SKIP() << "needs root (mount and UTS namespaces) and openssh-server";
  }
  Coordinator coord;
  Fleet fleet(2);
  TempDir tools("lab-agent");
  // An agent whose join hangs, so the test can kill the host while `labd join` runs there.
  const auto hanging = tools.write("labd",
                                   "#!/bin/sh\n"
                                   "if [ \"$1\" = join ]; then\n"
                                   "  mkdir -p /run/lab && : > /run/lab/joining && sleep 120\n"
                                   "fi\n"
                                   "exit 1\n");
  fs::permissions(hanging, fs::perms::owner_all);

  const auto marker = fleet.host(0).root() / "run/lab/joining";
  std::thread watcher([&] {
    if (wait_until([&] { return fs::exists(marker); }, 60s)) {
      fleet.host(0).kill_host();
    }
  });
  auto r = bootstrap(coord, fleet, {fleet.targets().front()}, {"--retries", "0"}, hanging.string());
  watcher.join();
  EXPECT_EQ(r.exit_code, 1) << r.output;
  ASSERT_EQ(r.hosts.size(), 1U) << r.output;
  EXPECT_EQ(r.field(0, "status"), "failed");
  EXPECT_EQ(r.field(0, "step"), "join") << r.output;
  EXPECT_NE(r.field(0, "message").find("token revoked"), std::string::npos) << r.output;
  EXPECT_NE(r.field(0, "message").find("host unreachable"), std::string::npos) << r.output;
  const auto tokens = coord.query({"token", "list"}).as_array();
  ASSERT_EQ(tokens.size(), 1U);
  EXPECT_EQ(tokens.front().as_object().at("state"), "revoked");

  // The host comes back; a plain re-run installs the real agent and joins it.
  fleet.host(0).start();
  auto again = bootstrap(coord, fleet, fleet.targets(), {});
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(again.field(0, "status"), "joined") << again.output;
  EXPECT_EQ(again.field(1, "status"), "joined") << again.output;
  EXPECT_EQ(node_names_with(coord, "site", "lab"),
            (std::set<std::string>{fleet.name(0), fleet.name(1)}));
}

}  // namespace
