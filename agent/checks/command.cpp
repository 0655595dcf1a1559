// Command checks: fork, drop to the check's user, exec; read the merged output until the
// process group is gone or the deadline passes, then kill the whole group.
#include "agent/checks/kinds.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>
#include <vector>

namespace lab::agent::checks::detail {
namespace {

using namespace std::chrono_literals;

// The environment of every check: nothing of labd's own (tokens, proxy settings, sockets) leaks
// into it, and the same check behaves the same on every node.
constexpr std::string_view kPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// Once the main process has exited and its group is killed, what is still in the pipe is read
// for this long at most: a process that left the group (setsid) may hold the pipe open forever.
constexpr auto kDrainGrace = 200ms;
// SIGKILL is not instant: a process in uninterruptible sleep dies when the sleep ends. Past
// this, the child is reaped by a thread of its own so that run() still returns.
constexpr auto kReapGrace = 1000ms;
// Output past kMaxOutput is moved to /dev/null in steps of up to this much (more than a pipe
// holds, so one step empties it).
constexpr std::size_t kDropChunk = std::size_t{1} << 20;

// Who the child becomes.
struct Account {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
  std::vector<gid_t> groups;  // supplementary groups, as initgroups would set them
  bool switch_user = false;   // labd is root and drops to uid/gid/groups
};

// The step of the child's set-up that failed, sent with errno through a close-on-exec pipe:
// the pipe reaches EOF without data exactly when execve succeeded.
enum class Step : int { dev_null, redirect, close_fds, chdir, setgroups, setgid, setuid, exec };
struct ChildError {
  Step step = Step::exec;
  int error = 0;
};

std::optional<Account> resolve_user(const std::string& name, std::string& reason) {
  const long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(hint > 0 ? static_cast<std::size_t>(hint) : 4096);
  passwd pw{};
  passwd* found = nullptr;
  int rc = 0;
  while ((rc = getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found)) == ERANGE &&
         buf.size() < std::size_t{1} << 20) {
    buf.resize(buf.size() * 2);
  }
  // getpwnam_r(3): these codes also mean "not found" on some NSS modules.
  if (found == nullptr && (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM)) {
    reason = "user '" + name + "' does not exist";
    return std::nullopt;
  }
  if (found == nullptr) {
    reason = "cannot look up user '" + name + "': " + errno_text(rc);
    return std::nullopt;
  }
  if (pw.pw_uid == 0) {
    reason = "refusing to run a check as root";
    return std::nullopt;
  }
  Account account;
  account.uid = pw.pw_uid;
  account.gid = pw.pw_gid;
  account.home = pw.pw_dir != nullptr && pw.pw_dir[0] != '\0' ? pw.pw_dir : "/";
  if (geteuid() != 0) {
    if (pw.pw_uid != geteuid()) {
      reason = "cannot run as user '" + name + "': labd is not running as root";
      return std::nullopt;
    }
    return account;
  }
  // initgroups() reads /etc/group through NSS, which allocates and takes locks: not safe in
  // the child of a multi-threaded process. getgrouplist() here plus setgroups() in the child
  // is the same thing split at the fork.
  int count = 16;
  account.groups.resize(static_cast<std::size_t>(count));
  for (int attempt = 0; attempt < 8; ++attempt) {
    const int wanted = count;
    if (getgrouplist(name.c_str(), account.gid, account.groups.data(), &count) >= 0) {
      account.groups.resize(static_cast<std::size_t>(count));
      account.switch_user = true;
      return account;
    }
    count = std::max(count, wanted * 2);  // count now holds the size it needs
    account.groups.resize(static_cast<std::size_t>(count));
  }
  reason = "cannot list the groups of user '" + name + "'";
  return std::nullopt;
}

// Where execve finds the program: a name without '/' is searched in kPath, as a shell would
// with the check's PATH (labd's own PATH must not decide which program runs).
std::optional<std::string> find_program(const std::string& name) {
  if (name.find('/') != std::string::npos)
    return name;
  std::string_view dirs = kPath;
  while (!dirs.empty()) {
    const auto colon = dirs.find(':');
    std::string candidate(dirs.substr(0, colon));
    candidate += '/';
    candidate += name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) != 0)
      return candidate;
    dirs.remove_prefix(colon == std::string_view::npos ? dirs.size() : colon + 1);
  }
  return std::nullopt;
}

// A pipe's ends, both close-on-exec and above 0-2: the child dup2()s onto 0, 1 and 2, which
// must not be one of the ends it still needs (labd could be started with 0-2 closed).
bool make_pipe(Fd& read_end, Fd& write_end) {
  int fds[2] = {-1, -1};
  if (pipe2(fds, O_CLOEXEC) != 0)
    return false;
  for (int& fd : fds) {
    if (fd <= STDERR_FILENO) {
      const int moved = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
      ::close(fd);
      fd = moved;
    }
  }
  read_end = Fd(fds[0]);
  write_end = Fd(fds[1]);
  return read_end.valid() && write_end.valid();
}

std::string step_text(Step step) {
  switch (step) {
    case Step::dev_null:
      return "open /dev/null";
    case Step::redirect:
      return "redirect output";
    case Step::close_fds:
      return "close file descriptors";
    case Step::chdir:
      return "chdir /";
    case Step::setgroups:
      return "setgroups";
    case Step::setgid:
      return "setgid";
    case Step::setuid:
      return "setuid";
    case Step::exec:
      return "exec";
  }
  return "set-up";
}

std::string status_text(int status) {
  if (WIFEXITED(status))
    return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* abbrev = sigabbrev_np(sig);
    return abbrev != nullptr ? std::string("killed by signal SIG") + abbrev
                             : "killed by signal " + std::to_string(sig);
  }
  return "stopped with status " + std::to_string(status);
}

// Everything the child needs, built before fork: after it, only async-signal-safe calls.
struct Launch {
  std::string program;
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::vector<char*> argv;
  std::vector<char*> envp;
  Account account;
  int max_fd = 0;  // for the close() loop when close_range is missing

  void finish() {
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env)
      envp.push_back(e.data());
    envp.push_back(nullptr);
    rlimit lim{};
    max_fd = getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY
                 ? static_cast<int>(std::min<rlim_t>(lim.rlim_cur, 1 << 20))
                 : 65536;
  }
};

[[noreturn]] void child_fail(int report_fd, Step step) {
  const ChildError report{step, errno};
  // Nothing to do if this fails: the parent then sees exit status 127 without a report.
  [[maybe_unused]] const ssize_t n = ::write(report_fd, &report, sizeof report);
  _exit(127);
}

// In the child, between fork and exec.
[[noreturn]] void child(const Launch& launch, int null_fd, int out_fd, int report_fd) {
  // Ignored signals and the signal mask survive execve: labd ignores SIGPIPE (shared/http/
  // server), and its threads may block signals. A check starts with the defaults, as from a
  // login shell. Dispositions first, so that a signal pending on the mask is not handled by
  // labd's handlers in this copy of labd. sigaction fails for SIGKILL and SIGSTOP, which is
  // fine, and for glibc's internal signals (32, 33), which labd may have inherited ignored:
  // those are reset by the system call itself.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sigaction(sig, &default_action, nullptr) != 0 && errno == EINVAL && sig >= 32) {
      // The kernel's struct sigaction (handler, flags, restorer, mask) on Linux.
      struct {
        void (*handler)(int);
        unsigned long flags;
        void (*restorer)();
        unsigned long mask;
      } kernel_default{SIG_DFL, 0, nullptr, 0};
      syscall(SYS_rt_sigaction, sig, &kernel_default, nullptr, sizeof kernel_default.mask);
    }
  }
  sigset_t none;
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, nullptr);
  // Its own process group, so that the timeout can kill everything the check started. The
  // parent does the same, whichever of the two runs first.
  setpgid(0, 0);
  if (dup2(null_fd, STDIN_FILENO) < 0)
    child_fail(report_fd, Step::dev_null);
  if (dup2(out_fd, STDOUT_FILENO) < 0 || dup2(out_fd, STDERR_FILENO) < 0)
    child_fail(report_fd, Step::redirect);
  // The report pipe goes to 3 and stays close-on-exec; everything above it is closed, so the
  // check inherits no socket, database or key file of labd, whatever flags they were opened
  // with.
  constexpr int kReportFd = STDERR_FILENO + 1;
  if (report_fd != kReportFd) {
    if (dup2(report_fd, kReportFd) < 0)
      child_fail(report_fd, Step::close_fds);
    report_fd = kReportFd;
  }
  if (fcntl(report_fd, F_SETFD, FD_CLOEXEC) != 0)
    child_fail(report_fd, Step::close_fds);
  if (close_range(kReportFd + 1, ~0U, 0) != 0) {
    for (int fd = kReportFd + 1; fd < launch.max_fd; ++fd)
      ::close(fd);
  }
  if (chdir("/") != 0)
    child_fail(report_fd, Step::chdir);
  if (launch.account.switch_user) {
    // Groups first and uid last: after setuid the process can no longer change its groups.
    if (setgroups(launch.account.groups.size(), launch.account.groups.data()) != 0)
      child_fail(report_fd, Step::setgroups);
    if (setgid(launch.account.gid) != 0)
      child_fail(report_fd, Step::setgid);
    if (setuid(launch.account.uid) != 0)
      child_fail(report_fd, Step::setuid);
  }
  execve(launch.program.c_str(), launch.argv.data(), launch.envp.data());
  child_fail(report_fd, Step::exec);
}

// True once the child has exited; it stays a zombie (WNOWAIT), which keeps its pid, and with
// it the process group id, from being reused until the group has been killed.
bool leader_exited(pid_t pid) {
  siginfo_t info{};
  if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0)
    return errno == ECHILD;  // reaped by someone else (SIGCHLD ignored): nothing to wait for
  return info.si_pid == pid;
}

// Reaps the child, waiting at most kReapGrace; returns its wait status or nullopt.
std::optional<int> reap(pid_t pid, const Fd& pidfd) {
  const auto until = Clock::now() + kReapGrace;
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid)
      return status;
    if (r < 0 && errno != EINTR)
      return std::nullopt;
    if (Clock::now() >= until)
      break;
    if (pidfd.valid()) {
      pollfd p{pidfd.get(), POLLIN, 0};
      ::poll(&p, 1, poll_timeout(until));
    } else {
      std::this_thread::sleep_for(5ms);
    }
  }
  // Still alive after SIGKILL: let a thread wait for it rather than leave a zombie or block.
  try {
    std::thread([pid] { waitpid(pid, nullptr, 0); }).detach();
  } catch (const std::system_error&) {
    // No thread to spare: the zombie stays until labd exits.
  }
  return std::nullopt;
}

// One read of the output pipe: into out.output while it has room, then to /dev/null with
// splice(2), so a check printing megabytes costs labd no buffer (the pages of a freed one stay
// with the heap) and no copy. Returns what read(2) would: bytes taken, 0 at EOF, -1 with errno.
ssize_t take_output(int fd, Outcome& out, Fd& sink) {
  if (out.output.size() < kMaxOutput) {
    const std::size_t had = out.output.size();
    out.output.resize(kMaxOutput);
    const ssize_t n = ::read(fd, out.output.data() + had, kMaxOutput - had);
    out.output.resize(had + (n > 0 ? static_cast<std::size_t>(n) : 0));
    return n;
  }
  if (!sink.valid())
    sink = Fd(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  ssize_t n = -1;
  if (sink.valid())
    n = ::splice(fd, nullptr, sink.get(), nullptr, kDropChunk, SPLICE_F_NONBLOCK);
  if (!sink.valid() || (n < 0 && errno == EINVAL)) {
    // No /dev/null, or a kernel that cannot splice into it: read and drop.
    std::array<char, 4096> discard{};
    n = ::read(fd, discard.data(), discard.size());
  }
  if (n > 0)
    out.truncated = true;
  return n;
}

}  // namespace

Outcome run_command(const Spec& spec, Clock::time_point deadline) {
  Outcome out;
  Launch launch;
  auto account = resolve_user(spec.user, out.reason);
  if (!account)
    return out;
  launch.account = std::move(*account);

  if (spec.shell) {
    launch.program = "/bin/sh";
    launch.args = {"sh", "-c", spec.argv.front()};
  } else {
    auto program = find_program(spec.argv.front());
    if (!program) {
      out.reason = "program '" + spec.argv.front() + "' not found in " + std::string(kPath);
      return out;
    }
    launch.program = std::move(*program);
    launch.args = spec.argv;
  }
  launch.env = {"PATH=" + std::string(kPath), "HOME=" + launch.account.home, "LANG=C.UTF-8"};
  launch.finish();

  Fd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (null_fd.valid() && null_fd.get() <= STDERR_FILENO)
    null_fd = Fd(fcntl(null_fd.get(), F_DUPFD_CLOEXEC, STDERR_FILENO + 1));
  Fd out_read;
  Fd out_write;
  Fd report_read;
  Fd report_write;
  if (!null_fd.valid() || !make_pipe(out_read, out_write) ||
      !make_pipe(report_read, report_write)) {
    out.reason = "cannot create pipes: " + errno_text(errno);
    return out;
  }

  const pid_t pid = fork();
  if (pid < 0) {
    out.reason = "fork: " + errno_text(errno);
    return out;
  }
  if (pid == 0)
    child(launch, null_fd.get(), out_write.get(), report_write.get());
  setpgid(pid, pid);  // may fail once the child has exec'd: it did so itself then
  out_write.reset();  // so that EOF comes when the last process of the check closes its end
  report_write.reset();
  null_fd.reset();
  fcntl(out_read.get(), F_SETFL, O_NONBLOCK);
  // Readable when the child exits. Without it (kernels before 5.3) the loop polls every 10 ms.
  // The raw syscall: glibc 2.36's <sys/pidfd.h> lacks extern "C" and does not link from C++.
  const Fd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0U)));

  Fd sink;  // /dev/null, opened once output past kMaxOutput comes
  ChildError report;
  std::size_t report_bytes = 0;
  std::string poll_error;
  bool exited = false;
  auto limit = deadline;
  for (;;) {
    if (!exited && leader_exited(pid)) {
      exited = true;
      // Whatever the check left running in its group dies with it: it must not outlive the
      // check, nor hold the pipe open so that the output never ends.
      kill(-pid, SIGKILL);
      limit = std::min(deadline, Clock::now() + kDrainGrace);
    }
    if (exited && !out_read.valid() && !report_read.valid())
      break;
    const int wait_ms = poll_timeout(limit);
    if (wait_ms == 0)
      break;
    pollfd fds[3] = {{out_read.get(), POLLIN, 0},
                     {report_read.get(), POLLIN, 0},
                     {exited ? -1 : pidfd.get(), POLLIN, 0}};
    const bool tick = !exited && !pidfd.valid();
    if (::poll(fds, 3, tick ? std::min(wait_ms, 10) : wait_ms) < 0) {
      if (errno == EINTR)
        continue;
      poll_error = "poll: " + errno_text(errno);
      break;
    }
    // One read per round, so that a check writing without pause cannot keep this loop from
    // looking at the clock.
    if (fds[0].revents != 0) {
      const ssize_t n = take_output(out_read.get(), out, sink);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        out_read.reset();
    }
    if (fds[1].revents != 0) {
      auto* dest = reinterpret_cast<char*>(&report);  // NOLINT: a trivially copyable struct
      const ssize_t n =
          ::read(report_read.get(), dest + report_bytes, sizeof report - report_bytes);
      if (n > 0)
        report_bytes += static_cast<std::size_t>(n);
      else if (n == 0 || errno != EINTR)
        report_read.reset();
    }
  }

  if (!exited)
    kill(-pid, SIGKILL);  // before reaping: the live leader keeps the group id from reuse
  const std::optional<int> status = reap(pid, pidfd);

  if (!poll_error.empty()) {
    out.reason = std::move(poll_error);
  } else if (!exited) {
    out.reason = "killed after the " + timeout_text(spec.timeout) + " timeout (process group)";
  } else if (report_bytes == sizeof report) {
    out.reason =
        report.step == Step::exec
            ? "cannot run " + launch.program + ": " + errno_text(report.error)
            : step_text(report.step) + " for user '" + spec.user + "': " + errno_text(report.error);
  } else if (!status) {
    out.reason = "lost the exit status (is SIGCHLD ignored?)";
  } else {
    out.passed = WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
    out.reason = status_text(*status);
  }
  return out;
}

}  // namespace lab::agent::checks::detail
