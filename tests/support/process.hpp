#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace lab::tests {

using namespace std::chrono_literals;

/// A real program started by a test as a foreground child (never --daemon: on these machines
/// nobody reaps orphans). stdout and stderr go to a log file. The destructor kills the process
/// group with SIGKILL if it still runs and reaps it, so a failing test leaves nothing behind.
class ChildProcess {
 public:
  struct Options {
    std::vector<std::string> argv;
    std::map<std::string, std::string> env;  // added to (or replacing in) this process's env
    std::string netns;                       // run inside `ip netns exec <netns>` when set
    std::filesystem::path log;               // default: a file under $TMPDIR
  };

  /// Starts the program; throws std::runtime_error when it cannot be started.
  static ChildProcess start(Options options);

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  /// True while the process has not exited (reaps it if it has).
  bool running();
  /// Sends `sig` to the process group.
  void signal(int sig) const;
  /// Waits up to `timeout` for exit; returns the exit code, 128+signal when killed by a signal,
  /// or -1 on timeout.
  int wait(std::chrono::milliseconds timeout);
  /// SIGTERM, then SIGKILL after `grace`; returns the exit status as wait() does.
  int stop(std::chrono::milliseconds grace = 5000ms);
  /// Everything the process wrote so far.
  [[nodiscard]] std::string output() const;
  [[nodiscard]] const std::filesystem::path& log_path() const noexcept { return log_; }

 private:
  ChildProcess(pid_t pid, std::filesystem::path log, bool owns_log) noexcept
      : pid_(pid), log_(std::move(log)), owns_log_(owns_log) {}
  pid_t pid_ = -1;
  int status_ = -1;
  std::filesystem::path log_;
  bool owns_log_ = false;
};

struct CommandResult {
  int exit_code = -1;  // -1: timed out (the command was killed)
  std::string output;  // stdout and stderr together
};

/// Runs a command to completion (bounded by `timeout`) and captures its output.
CommandResult run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 60s,
                  const std::map<std::string, std::string>& env = {});

/// Runs `sh -c script`; convenient for pipelines in setup code.
CommandResult sh(const std::string& script, std::chrono::milliseconds timeout = 60s);

/// True when `name` is an executable on PATH (or an absolute path that exists).
bool have_program(std::string_view name);
bool is_root();

/// Polls `condition` every 10 ms until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 10s);

/// The build tree's directory (where `bootstrap/lab/lab` and `agent/labd/labd` are).
std::filesystem::path build_dir();
std::filesystem::path lab_binary();
std::filesystem::path labd_binary();

}  // namespace lab::tests

/// Skips the current GoogleTest test with a stated reason unless running as root.
#define LAB_REQUIRE_ROOT()                                            \
  do {                                                                \
    if (!::lab::tests::is_root()) {                                   \
      GTEST_SKIP() << "needs root (network namespaces, raw sockets)"; \
    }                                                                 \
  } while (false)

/// Skips the current test unless `program` is installed.
#define LAB_REQUIRE_PROGRAM(program)                                                \
  do {                                                                              \
    if (!::lab::tests::have_program(program)) {                                     \
      GTEST_SKIP() << (program) << " is not installed (packaging/install-deps.sh)"; \
    }                                                                               \
  } while (false)
