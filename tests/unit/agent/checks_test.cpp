// agent/checks against real programs (true, false, sh, sleep, head, id, env), the project's own
// HTTP server on loopback and real TCP sockets: no mocks.
#include "agent/checks/runner.hpp"
#include "shared/http/server/server.hpp"
#include "tests/support/pki.hpp"
#include "tests/support/temp_dir.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>

namespace {

using namespace std::chrono_literals;
namespace checks = lab::agent::checks;
namespace http = lab::shared::http;

constexpr const char* kPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

bool is_root() {
  return geteuid() == 0;
}

// The passwd entry of the current user (name and home), for runs without root.
std::pair<std::string, std::string> current_user() {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (getpwuid_r(geteuid(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr)
    return {};
  return {pw.pw_name, pw.pw_dir};
}

// Command checks run as nobody when the tests are root (as in CI), else as the current user.
checks::Spec command(std::vector<std::string> argv, std::chrono::milliseconds timeout = 5s) {
  checks::Spec spec;
  spec.name = "test";
  spec.kind = checks::Kind::command;
  spec.argv = std::move(argv);
  spec.timeout = timeout;
  if (!is_root())
    spec.user = current_user().first;
  return spec;
}

checks::Spec shell(std::string script, std::chrono::milliseconds timeout = 5s) {
  checks::Spec spec = command({std::move(script)}, timeout);
  spec.shell = true;
  return spec;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

// Processes of process group `pgid` that still run (zombies left to an init that does not reap
// do not count: they run nothing and hold nothing).
std::vector<pid_t> live_in_group(pid_t pgid) {
  std::vector<pid_t> live;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit))
      continue;
    std::ifstream in(entry.path() / "stat");
    std::string stat;
    std::getline(in, stat);
    const auto paren = stat.rfind(')');
    if (paren == std::string::npos)
      continue;
    std::istringstream rest(stat.substr(paren + 1));
    char state = 0;
    pid_t ppid = 0;
    pid_t pgrp = 0;
    rest >> state >> ppid >> pgrp;
    if (pgrp == pgid && state != 'Z' && state != 'X')
      live.push_back(std::stoi(name));
  }
  return live;
}

// SIGKILL takes effect when each process is next scheduled: give the group a moment to go.
bool group_gone(pid_t pgid) {
  for (int i = 0; i < 100; ++i) {
    if (live_in_group(pgid).empty())
      return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

pid_t first_line_pid(const std::string& output) {
  const auto l = lines(output);
  return l.empty() ? 0 : static_cast<pid_t>(std::stoi(l.front()));
}

// A TCP socket on 127.0.0.1 with a kernel-chosen port; listening when `backlog` >= 0.
struct Socket {
  explicit Socket(int backlog = -1) : fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
    port = ntohs(a.sin_port);
    if (backlog >= 0) {
      EXPECT_EQ(::listen(fd, backlog), 0);
    }
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() { ::close(fd); }
  int fd;
  std::uint16_t port = 0;
};

// A port on 127.0.0.1 that nothing listens on: bound and closed again at once.
std::uint16_t closed_port() {
  const Socket s;
  return s.port;
}

// ---- command ----------------------------------------------------------------------------

TEST(CommandCheck, ExitStatusDecides) {
  auto ok = checks::run(command({"/bin/true"}));
  EXPECT_TRUE(ok.passed);
  EXPECT_EQ(ok.reason, "exit status 0");
  EXPECT_FALSE(ok.truncated);

  auto failed = checks::run(command({"/bin/false"}));
  EXPECT_FALSE(failed.passed);
  EXPECT_EQ(failed.reason, "exit status 1");

  auto two = checks::run(shell("exit 2"));
  EXPECT_FALSE(two.passed);
  EXPECT_EQ(two.reason, "exit status 2");

  auto killed = checks::run(shell("kill -TERM $$"));
  EXPECT_FALSE(killed.passed);
  EXPECT_EQ(killed.reason, "killed by signal SIGTERM");
}

TEST(CommandCheck, RunsWithoutAShellAndFindsProgramsInItsPath) {
  // A shell would expand $HOME and run the touch; without one they are plain arguments.
  auto echo = checks::run(command({"echo", "$HOME;", "touch", "/tmp/lab-checks-injected"}));
  EXPECT_TRUE(echo.passed) << echo.reason;
  EXPECT_EQ(echo.output, "$HOME; touch /tmp/lab-checks-injected\n");
  EXPECT_FALSE(std::filesystem::exists("/tmp/lab-checks-injected"));

  auto missing = checks::run(command({"no-such-program-lab"}));
  EXPECT_FALSE(missing.passed);
  EXPECT_EQ(missing.reason, std::string("program 'no-such-program-lab' not found in ") + kPath);

  // execve fails in the child (not executable): the reason comes back through the report pipe.
  auto not_executable = checks::run(command({"/etc/passwd"}));
  EXPECT_FALSE(not_executable.passed);
  EXPECT_EQ(not_executable.reason, "cannot run /etc/passwd: permission denied");
}

TEST(CommandCheck, ShellTakesExactlyOneString) {
  auto piped = checks::run(shell("echo a | tr a b"));
  EXPECT_TRUE(piped.passed) << piped.reason;
  EXPECT_EQ(piped.output, "b\n");

  auto spec = command({"echo", "a"});
  spec.shell = true;
  auto refused = checks::run(spec);
  EXPECT_FALSE(refused.passed);
  EXPECT_EQ(refused.reason, "a shell check takes its command as one string, not 2");
  EXPECT_EQ(refused.output, "");
}

TEST(CommandCheck, StdoutAndStderrGoIntoOneOutputAndStdinIsDevNull) {
  auto both = checks::run(shell("echo out; echo err >&2; echo out2"));
  EXPECT_EQ(both.output, "out\nerr\nout2\n");

  auto in = checks::run(command({"readlink", "/proc/self/fd/0"}));
  EXPECT_EQ(in.output, "/dev/null\n");
}

TEST(CommandCheck, CleanEnvironmentAndRootDirectory) {
  auto env = checks::run(command({"env"}));
  ASSERT_TRUE(env.passed) << env.reason;
  auto got = lines(env.output);
  std::sort(got.begin(), got.end());
  const std::string home = is_root() ? "/nonexistent" : current_user().second;
  EXPECT_EQ(got, (std::vector<std::string>{"HOME=" + home, "LANG=C.UTF-8",
                                           std::string("PATH=") + kPath}));

  auto pwd = checks::run(command({"/bin/pwd"}));
  EXPECT_EQ(pwd.output, "/\n");
}

TEST(CommandCheck, InheritsNoOtherFileDescriptor) {
  // Descriptors labd could hold without O_CLOEXEC (a library's socket, a database).
  const int leaked = ::open("/dev/null", O_RDONLY);  // NOLINT(android-cloexec-open): on purpose
  ASSERT_GE(leaked, 0);
  ASSERT_EQ(dup2(leaked, 100), 100);
  // ls lists the descriptors of the shell that waits for it ($$), not its own.
  auto fds = checks::run(shell("ls /proc/$$/fd"));
  ::close(100);
  ::close(leaked);
  EXPECT_TRUE(fds.passed) << fds.reason;
  EXPECT_EQ(fds.output, "0\n1\n2\n");
}

TEST(CommandCheck, StartsWithDefaultSignalHandling) {
  // As labd does: shared/http/server ignores SIGPIPE, and a thread may block signals. Both
  // would reach the check through execve.
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction previous {};
  ASSERT_EQ(sigaction(SIGPIPE, &ignore, &previous), 0);
  sigset_t blocked;
  sigset_t old_mask;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGUSR1);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &blocked, &old_mask), 0);
  // A process may also have inherited glibc's internal signal 32 ignored (seen under a test
  // runner): glibc's sigaction cannot reset it, so labd asks the kernel directly.
  struct {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)();
    unsigned long mask;
  } kernel_ignore{SIG_IGN, 0, nullptr, 0}, kernel_default{SIG_DFL, 0, nullptr, 0};
  ASSERT_EQ(syscall(SYS_rt_sigaction, 32, &kernel_ignore, nullptr, sizeof kernel_ignore.mask), 0);
  auto out = checks::run(command({"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"}));
  ASSERT_EQ(syscall(SYS_rt_sigaction, 32, &kernel_default, nullptr, sizeof kernel_default.mask), 0);
  ASSERT_EQ(pthread_sigmask(SIG_SETMASK, &old_mask, nullptr), 0);
  ASSERT_EQ(sigaction(SIGPIPE, &previous, nullptr), 0);
  EXPECT_EQ(out.output, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
}

TEST(CommandCheck, RunsInItsOwnProcessGroup) {
  auto out = checks::run(shell("echo $$ $(cut -d' ' -f5 /proc/$$/stat)"));
  ASSERT_TRUE(out.passed) << out.reason;
  std::istringstream in(out.output);
  pid_t pid = 0;
  pid_t pgid = 0;
  in >> pid >> pgid;
  EXPECT_GT(pid, 0);
  EXPECT_EQ(pgid, pid);
  EXPECT_NE(pgid, getpgrp());
}

// ---- user -------------------------------------------------------------------------------

TEST(CommandCheck, RootRunsChecksAsNobodyWithItsGroupsOnly) {
  if (!is_root())
    GTEST_SKIP() << "needs root to switch users";
  auto uid = checks::run(command({"id", "-u"}));
  EXPECT_TRUE(uid.passed) << uid.reason;
  EXPECT_EQ(uid.output, "65534\n");
  // The test process takes supplementary groups as labd may have them: the check must not
  // keep them (setgroups from nobody's own list), nobody is only in nogroup.
  std::vector<gid_t> saved(static_cast<std::size_t>(getgroups(0, nullptr)));
  ASSERT_GE(getgroups(static_cast<int>(saved.size()), saved.data()), 0);
  const std::vector<gid_t> extra = {0, 4, 27};
  ASSERT_EQ(setgroups(extra.size(), extra.data()), 0);
  auto groups = checks::run(command({"id", "-G"}));
  ASSERT_EQ(setgroups(saved.size(), saved.data()), 0);
  EXPECT_EQ(groups.output, "65534\n");
  auto gid = checks::run(command({"id", "-g"}));
  EXPECT_EQ(gid.output, "65534\n");
}

TEST(CommandCheck, RefusesRootAndUnknownUsers) {
  const lab::tests::TempDir dir("lab-checks");
  const auto marker = dir / "ran";
  auto spec = shell("touch " + marker.string());
  spec.user = "root";
  auto root = checks::run(spec);
  EXPECT_FALSE(root.passed);
  EXPECT_EQ(root.reason, "refusing to run a check as root");
  EXPECT_FALSE(std::filesystem::exists(marker));

  spec.user = "no-such-user-lab";
  auto unknown = checks::run(spec);
  EXPECT_FALSE(unknown.passed);
  EXPECT_EQ(unknown.reason, "user 'no-such-user-lab' does not exist");
  EXPECT_FALSE(std::filesystem::exists(marker));
}

// Without root, a check runs only as the user labd runs as. Tested as nobody in a child
// process when the tests run as root, so that CI covers it too.
TEST(CommandCheck, WithoutRootRunsOnlyAsItself) {
  auto unprivileged = [] {
    const std::string self = current_user().first;
    checks::Spec other = command({"id", "-u"});
    other.user = self == "daemon" ? "nobody" : "daemon";
    auto refused = checks::run(other);
    std::string result = refused.reason + "\n";
    checks::Spec mine = command({"id", "-u"});
    mine.user = self;
    auto ran = checks::run(mine);
    result += (ran.passed ? "passed " : "failed ") + ran.output;
    return std::make_pair(result, other.user);
  };
  std::string result;
  std::string other;
  if (!is_root()) {
    std::tie(result, other) = unprivileged();
  } else {
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
        _exit(2);
      const auto [text, user] = unprivileged();
      const std::string all = user + "\n" + text;
      _exit(::write(fds[1], all.data(), all.size()) == static_cast<ssize_t>(all.size()) ? 0 : 3);
    }
    ::close(fds[1]);
    std::string all;
    char buf[512];
    for (ssize_t n = 0; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
      all.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    other = all.substr(0, all.find('\n'));
    result = all.substr(all.find('\n') + 1);
  }
  const std::string uid = std::to_string(geteuid() == 0 ? 65534 : geteuid());
  EXPECT_EQ(result, "cannot run as user '" + other + "': labd is not running as root\npassed " +
                        uid + "\n");
}

// ---- timeout and process group -----------------------------------------------------------

TEST(CommandCheck, TimeoutKillsTheWholeProcessGroup) {
  auto out = checks::run(shell("echo $$; sleep 300 & sleep 300", 500ms));
  EXPECT_FALSE(out.passed);
  EXPECT_EQ(out.reason, "killed after the 500ms timeout (process group)");
  EXPECT_GE(out.duration, 500ms);
  EXPECT_LT(out.duration, 2s);
  const pid_t pgid = first_line_pid(out.output);
  ASSERT_GT(pgid, 0) << out.output;
  EXPECT_TRUE(group_gone(pgid)) << "left running: " << live_in_group(pgid).size();

  auto whole_seconds = checks::run(shell("sleep 300", 1s));
  EXPECT_EQ(whole_seconds.reason, "killed after the 1s timeout (process group)");
}

TEST(CommandCheck, BackgroundChildrenHoldingThePipeEndWithTheCheck) {
  // The background sleep keeps the pipe open: without the group kill at exit the read would
  // last until the timeout.
  auto out = checks::run(shell("echo $$; sleep 300 &", 5s));
  EXPECT_TRUE(out.passed) << out.reason;
  EXPECT_LT(out.duration, 2s);
  const pid_t pgid = first_line_pid(out.output);
  ASSERT_GT(pgid, 0) << out.output;
  EXPECT_TRUE(group_gone(pgid));
}

TEST(CommandCheck, BackgroundChildrenDoNotOutliveTheCheck) {
  // This one lets go of the pipe: the check ends at once, but its child must not live on.
  auto out = checks::run(shell("echo $$; sleep 300 >/dev/null 2>&1 &", 5s));
  EXPECT_TRUE(out.passed) << out.reason;
  const pid_t pgid = first_line_pid(out.output);
  ASSERT_GT(pgid, 0) << out.output;
  EXPECT_TRUE(group_gone(pgid));
}

// ---- output -----------------------------------------------------------------------------

TEST(CommandCheck, OutputIsCappedWhileThePipeKeepsBeingDrained) {
  // 20 MB: were the pipe not drained past the cap, head would block and hit the timeout.
  auto out = checks::run(command({"head", "-c", "20000000", "/dev/zero"}, 8s));
  EXPECT_TRUE(out.passed) << out.reason;
  EXPECT_EQ(out.output, std::string(checks::kMaxOutput, '\0'));
  EXPECT_TRUE(out.truncated);
  EXPECT_LT(out.duration, 5s);

  auto exact = checks::run(command({"head", "-c", "4096", "/dev/zero"}));
  EXPECT_EQ(exact.output.size(), checks::kMaxOutput);
  EXPECT_FALSE(exact.truncated);
  auto one_more = checks::run(command({"head", "-c", "4097", "/dev/zero"}));
  EXPECT_EQ(one_more.output.size(), checks::kMaxOutput);
  EXPECT_TRUE(one_more.truncated);
}

// ---- invalid specs ----------------------------------------------------------------------

TEST(Check, InvalidSpecsAreOutcomesNotExceptions) {
  auto zero = command({"/bin/true"}, 0ms);
  EXPECT_EQ(checks::run(zero).reason, "the timeout must be positive");
  EXPECT_EQ(checks::run(command({})).reason, "no command to run");
  EXPECT_EQ(checks::run(command({std::string("tr\0ue", 5)})).reason,
            "the command contains a NUL byte");

  checks::Spec http;
  http.kind = checks::Kind::http;
  for (const char* url : {"ftp://127.0.0.1/", "file:///etc/passwd", "127.0.0.1/", ""}) {
    http.url = url;
    auto out = checks::run(http);
    EXPECT_FALSE(out.passed);
    EXPECT_EQ(out.reason, "the URL must start with http:// or https://") << url;
  }

  checks::Spec tcp;
  tcp.kind = checks::Kind::tcp;
  tcp.port = 80;
  EXPECT_EQ(checks::run(tcp).reason, "no host to connect to");
  tcp.host = "127.0.0.1";
  tcp.port = 0;
  EXPECT_EQ(checks::run(tcp).reason, "no port to connect to");
}

// ---- http -------------------------------------------------------------------------------

class HttpCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    big_ = std::string(std::size_t{1024} * 1024, 'x');
    big_.replace(100, 5, "EARLY");
    big_.replace(big_.size() - 4, 4, "LATE");
    thread_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    std::vector<http::Reply> held;
    {
      const std::lock_guard lock(mutex_);
      held.swap(held_);
    }
    for (auto& r : held)
      r(http::Response::text(200, "late"));
    if (server_) {
      std::promise<void> stopped;
      boost::asio::post(io_, [&] { server_->stop([&] { stopped.set_value(); }); });
      stopped.get_future().wait_for(10s);
    }
    guard_.reset();
    io_.stop();
    thread_.join();
  }

  http::Response redirect(std::string location) {
    http::Response r = http::Response::text(302, "");
    r.headers.set("Location", std::move(location));
    return r;
  }

  void handle(const http::Request& req, const http::Reply& reply) {
    if (req.path == "/ok")
      return reply(http::Response::text(200, "all ok"));
    if (req.path == "/down")
      return reply(http::Response::text(503, "down"));
    if (req.path == "/loop") {
      ++loops_;
      return reply(redirect("/loop"));
    }
    if (req.path == "/moved")
      return reply(redirect("/ok"));
    if (req.path == "/to-ftp")
      return reply(redirect("ftp://127.0.0.1:" + std::to_string(ftp_port_) + "/x"));
    if (req.path == "/big")
      return reply(http::Response::text(200, big_));
    if (req.path == "/slow") {  // answered in TearDown, long after the check gave up
      const std::lock_guard lock(mutex_);
      held_.push_back(reply);
      return;
    }
    reply(http::Response::text(404, "not found"));
  }

  void start(std::optional<http::TlsConfig> tls = std::nullopt) {
    std::promise<std::uint16_t> bound;
    boost::asio::post(io_, [&] {
      server_ = std::make_unique<http::Server>(
          io_, [this](const http::Request& req, const http::Reply& reply) { handle(req, reply); });
      auto p = server_->listen_tcp("127.0.0.1", 0, std::move(tls));
      bound.set_value(p ? *p : 0);
    });
    port_ = bound.get_future().get();
    ASSERT_NE(port_, 0);
  }

  checks::Spec get(const std::string& path, std::chrono::milliseconds timeout = 5s) const {
    checks::Spec spec;
    spec.name = "web";
    spec.kind = checks::Kind::http;
    spec.url = "http://127.0.0.1:" + std::to_string(port_) + path;
    spec.timeout = timeout;
    return spec;
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_{
      io_.get_executor()};
  std::thread thread_;
  std::unique_ptr<http::Server> server_;
  std::uint16_t port_ = 0;
  std::uint16_t ftp_port_ = 0;
  std::string big_;
  std::atomic<int> loops_{0};
  std::mutex mutex_;
  std::vector<http::Reply> held_;
};

TEST_F(HttpCheck, StatusAndBodyDecide) {
  start();
  auto ok = checks::run(get("/ok"));
  EXPECT_TRUE(ok.passed) << ok.reason;
  EXPECT_EQ(ok.reason, "HTTP 200");
  EXPECT_EQ(ok.output, "all ok");
  EXPECT_FALSE(ok.truncated);

  auto spec = get("/ok");
  spec.expect_body = "ok";
  EXPECT_TRUE(checks::run(spec).passed);
  spec.expect_body = "nope";
  auto body = checks::run(spec);
  EXPECT_FALSE(body.passed);
  EXPECT_EQ(body.reason, "body does not contain \"nope\"");

  auto down = checks::run(get("/down"));
  EXPECT_FALSE(down.passed);
  EXPECT_EQ(down.reason, "HTTP 503");
  EXPECT_EQ(down.output, "down");

  spec = get("/down");
  spec.expect_status = 503;
  EXPECT_TRUE(checks::run(spec).passed);
  spec = get("/ok");
  spec.expect_status = 204;
  EXPECT_EQ(checks::run(spec).reason, "HTTP 200, expected 204");
}

TEST_F(HttpCheck, FollowsAtMostFiveRedirects) {
  start();
  auto moved = checks::run(get("/moved"));
  EXPECT_TRUE(moved.passed) << moved.reason;
  EXPECT_EQ(moved.output, "all ok");

  auto loop = checks::run(get("/loop"));
  EXPECT_FALSE(loop.passed);
  EXPECT_EQ(loop.reason, "more than 5 redirects");
  EXPECT_EQ(loops_.load(), 6);  // the first request and five redirects

  // Expecting a 3xx checks the redirect itself rather than following it.
  auto spec = get("/moved");
  spec.expect_status = 302;
  EXPECT_TRUE(checks::run(spec).passed);
}

TEST_F(HttpCheck, RedirectsOnlyToHttpOrHttps) {
  // Nothing listens there: were ftp allowed, curl would report a refused connection.
  ftp_port_ = closed_port();
  start();
  auto out = checks::run(get("/to-ftp"));
  EXPECT_FALSE(out.passed);
  EXPECT_EQ(out.reason, "redirected to a URL that is not http:// or https://");
}

TEST_F(HttpCheck, WholeTransferTimesOut) {
  start();
  auto out = checks::run(get("/slow", 300ms));
  EXPECT_FALSE(out.passed);
  EXPECT_EQ(out.reason, "timed out after 300ms");
  EXPECT_GE(out.duration, 300ms);
  EXPECT_LT(out.duration, 2s);
}

TEST_F(HttpCheck, KeepsOnlyTheStartOfALargeBody) {
  start();
  auto out = checks::run(get("/big"));
  EXPECT_TRUE(out.passed) << out.reason;
  EXPECT_EQ(out.output, big_.substr(0, checks::kMaxOutput));
  EXPECT_TRUE(out.truncated);

  auto spec = get("/big");
  spec.expect_body = "EARLY";  // in the first 64 KiB: found although the transfer was cut
  EXPECT_TRUE(checks::run(spec).passed);
  spec.expect_body = "LATE";  // at the end of the 1 MiB: never read
  auto late = checks::run(spec);
  EXPECT_FALSE(late.passed);
  EXPECT_EQ(late.reason, "body does not contain \"LATE\" in its first 64 KiB");
}

TEST_F(HttpCheck, VerifiesCertificates) {
  // A certificate for 127.0.0.1 from a CA the system does not trust.
  const lab::tests::TestPki pki;
  http::TlsConfig tls;
  tls.certificate_chain_pem = pki.server.pem() + pki.ca.pem();
  tls.private_key_pem = pki.server_key.to_pem();
  start(tls);
  auto spec = get("/ok");
  spec.url = "https://127.0.0.1:" + std::to_string(port_) + "/ok";
  auto out = checks::run(spec);
  EXPECT_FALSE(out.passed);
  EXPECT_EQ(out.reason.rfind("TLS: ", 0), 0U) << out.reason;
}

TEST_F(HttpCheck, ConnectionRefused) {
  checks::Spec spec;
  spec.kind = checks::Kind::http;
  spec.url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/";
  auto out = checks::run(spec);
  EXPECT_FALSE(out.passed);
  EXPECT_EQ(out.reason, "connect: connection refused");
}

// ---- tcp --------------------------------------------------------------------------------

checks::Spec tcp(const std::string& host, std::uint16_t port,
                 std::chrono::milliseconds timeout = 5s) {
  checks::Spec spec;
  spec.kind = checks::Kind::tcp;
  spec.host = host;
  spec.port = port;
  spec.timeout = timeout;
  return spec;
}

TEST(TcpCheck, ConnectsToAListener) {
  const Socket listener(16);
  auto out = checks::run(tcp("127.0.0.1", listener.port));
  EXPECT_TRUE(out.passed) << out.reason;
  EXPECT_EQ(out.reason, "connected to 127.0.0.1:" + std::to_string(listener.port));
  EXPECT_EQ(out.output, "");

  auto by_name = checks::run(tcp("localhost", listener.port));
  EXPECT_TRUE(by_name.passed) << by_name.reason;
}

TEST(TcpCheck, RefusedAndUnknownHost) {
  auto refused = checks::run(tcp("127.0.0.1", closed_port()));
  EXPECT_FALSE(refused.passed);
  EXPECT_EQ(refused.reason, "connect: connection refused");

  // A label longer than 63 bytes: the resolver rejects it without asking any server.
  auto unknown = checks::run(tcp(std::string(64, 'a') + ".invalid", 80));
  EXPECT_FALSE(unknown.passed);
  EXPECT_EQ(unknown.reason.rfind("host: ", 0), 0U) << unknown.reason;
}

TEST(TcpCheck, TimesOutWhenTheHandshakeNeverCompletes) {
  // A listener whose accept queue is full: the kernel drops further SYNs, so a connect hangs.
  const Socket listener(0);
  std::vector<int> fillers;
  for (int i = 0; i < 3; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(listener.port);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    const int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    EXPECT_TRUE(rc == 0 || errno == EINPROGRESS) << errno;
    fillers.push_back(fd);
  }
  std::this_thread::sleep_for(50ms);  // let the handshakes that can complete do so
  auto out = checks::run(tcp("127.0.0.1", listener.port, 300ms));
  for (const int fd : fillers)
    ::close(fd);
  EXPECT_FALSE(out.passed);
  EXPECT_EQ(out.reason, "timed out after 300ms");
  EXPECT_GE(out.duration, 300ms);
  EXPECT_LT(out.duration, 2s);
}

}  // namespace
