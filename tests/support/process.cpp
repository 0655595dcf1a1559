#include "tests/support/process.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace lab::tests {
namespace {

std::filesystem::path temp_log_path() {
  const char* base = std::getenv("TMPDIR");  // NOLINT(concurrency-mt-unsafe): no setenv
  std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/lab-child.XXXXXX";
  const int fd = mkstemp(tmpl.data());
  if (fd < 0)
    throw std::runtime_error("mkstemp failed");
  close(fd);
  return tmpl;
}

std::vector<std::string> merged_env(const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> all;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    const auto eq = entry.find('=');
    if (eq != std::string_view::npos)
      all[std::string(entry.substr(0, eq))] = entry.substr(eq + 1);
  }
  for (const auto& [k, v] : extra)
    all[k] = v;
  std::vector<std::string> out;
  out.reserve(all.size());
  for (const auto& [k, v] : all) {
    std::string entry = k;
    entry += '=';
    entry += v;
    out.push_back(std::move(entry));
  }
  return out;
}

int decode_status(int status) {
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  if (WIFSIGNALED(status))
    return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

ChildProcess ChildProcess::start(Options options) {
  if (options.argv.empty())
    throw std::runtime_error("ChildProcess: empty argv");
  std::vector<std::string> argv;
  if (!options.netns.empty())
    argv = {"ip", "netns", "exec", options.netns};
  argv.insert(argv.end(), options.argv.begin(), options.argv.end());
  const bool owns_log = options.log.empty();
  const std::filesystem::path log = owns_log ? temp_log_path() : options.log;
  const std::vector<std::string> env = merged_env(options.env);

  // Everything the child needs is prepared before fork: only async-signal-safe calls after it.
  std::vector<char*> c_argv;
  c_argv.reserve(argv.size() + 1);
  for (auto& a : argv)
    c_argv.push_back(const_cast<char*>(a.c_str()));  // NOLINT
  c_argv.push_back(nullptr);
  std::vector<char*> c_env;
  c_env.reserve(env.size() + 1);
  for (const auto& e : env)
    c_env.push_back(const_cast<char*>(e.c_str()));  // NOLINT
  c_env.push_back(nullptr);
  const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0)
    throw std::runtime_error("cannot open log " + log.string());

  const pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    throw std::runtime_error("fork failed");
  }
  if (pid == 0) {
    setpgid(0, 0);  // own process group: signal() reaches its children too
    const int devnull = ::open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    // A long-lived child must not keep the test's listening sockets (servers it started and
    // stopped) or the port cannot be bound again.
    close_range(3, ~0U, 0);
    execvpe(c_argv[0], c_argv.data(), c_env.data());
    _exit(127);
  }
  setpgid(pid, pid);
  close(log_fd);
  return {pid, log, owns_log};
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      status_(other.status_),
      log_(std::move(other.log_)),
      owns_log_(std::exchange(other.owns_log_, false)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && running()) {
      signal(SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    pid_ = std::exchange(other.pid_, -1);
    status_ = other.status_;
    log_ = std::move(other.log_);
    owns_log_ = std::exchange(other.owns_log_, false);
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && running()) {
    signal(SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  if (owns_log_) {
    std::error_code ec;
    std::filesystem::remove(log_, ec);
  }
}

bool ChildProcess::running() {
  if (pid_ <= 0 || status_ >= 0)
    return false;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = decode_status(status);
    return false;
  }
  return r == 0;
}

void ChildProcess::signal(int sig) const {
  if (pid_ > 0 && status_ < 0)
    ::kill(-pid_, sig);
}

int ChildProcess::wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return -1;
    std::this_thread::sleep_for(5ms);
  }
  return status_;
}

int ChildProcess::stop(std::chrono::milliseconds grace) {
  if (!running())
    return status_;
  signal(SIGTERM);
  const int rc = wait(grace);
  if (rc != -1)
    return rc;
  signal(SIGKILL);
  return wait(10s);
}

std::string ChildProcess::output() const {
  std::ifstream in(log_, std::ios::binary);
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

CommandResult run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                  const std::map<std::string, std::string>& env) {
  ChildProcess child = ChildProcess::start({.argv = argv, .env = env, .netns = {}, .log = {}});
  CommandResult result;
  result.exit_code = child.wait(timeout);
  if (result.exit_code == -1) {
    child.signal(SIGKILL);
    child.wait(10s);
  }
  result.output = child.output();
  return result;
}

CommandResult sh(const std::string& script, std::chrono::milliseconds timeout) {
  return run({"sh", "-c", script}, timeout);
}

bool have_program(std::string_view name) {
  if (name.find('/') != std::string_view::npos)
    return access(std::string(name).c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");  // NOLINT(concurrency-mt-unsafe): no setenv
  std::string_view rest = path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin";
  while (!rest.empty()) {
    const auto colon = rest.find(':');
    const std::string dir(rest.substr(0, colon));
    if (!dir.empty() && access((dir + "/" + std::string(name)).c_str(), X_OK) == 0)
      return true;
    if (colon == std::string_view::npos)
      break;
    rest.remove_prefix(colon + 1);
  }
  // sbin directories are often missing from a non-login PATH.
  for (const char* dir : {"/usr/sbin/", "/sbin/"}) {
    if (access((std::string(dir) + std::string(name)).c_str(), X_OK) == 0)
      return true;
  }
  return false;
}

bool is_root() {
  return geteuid() == 0;
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition())
      return true;
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(10ms);
  }
}

std::filesystem::path build_dir() {
  return LAB_TEST_BUILD_DIR;
}
std::filesystem::path lab_binary() {
  return build_dir() / "bootstrap/lab/lab";
}
std::filesystem::path labd_binary() {
  return build_dir() / "agent/labd/labd";
}

}  // namespace lab::tests
