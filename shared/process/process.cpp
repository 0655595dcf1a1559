#include "shared/process/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>

namespace lab::shared::process {
namespace {

using Clock = std::chrono::steady_clock;

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  [[nodiscard]] int get() const noexcept { return fd_; }
  void reset() noexcept {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

Result<std::pair<Fd, Fd>> make_pipe() {
  std::array<int, 2> fds{};
  if (::pipe2(fds.data(), O_CLOEXEC) != 0)
    return Error(ProcessError::spawn_failed, std::string("pipe: ") + errno_text(errno));
  return std::pair{Fd(fds[0]), Fd(fds[1])};
}

// The paths execve tries in turn: argv[0] itself when it names a path, else each PATH entry.
// Built before fork: the child of a threaded process may not allocate.
std::vector<std::string> candidates(const std::string& program,
                                    const std::vector<std::string>& env) {
  if (program.find('/') != std::string::npos)
    return {program};
  std::string path = "/usr/sbin:/usr/bin:/sbin:/bin";
  for (const auto& e : env) {
    if (e.starts_with("PATH="))
      path = e.substr(5);
  }
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= path.size()) {
    const auto end = std::min(path.find(':', start), path.size());
    if (end > start)
      out.push_back(path.substr(start, end - start) + "/" + program);
    start = end + 1;
  }
  return out;
}

std::string last_lines(std::string_view text, std::size_t lines) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
    text.remove_suffix(1);
  std::size_t pos = text.size();
  for (std::size_t n = 0; n < lines && pos > 0; ++n) {
    const auto nl = text.rfind('\n', pos - 1);
    pos = nl == std::string_view::npos ? 0 : nl;
    if (pos == 0)
      break;
  }
  std::string out(text.substr(pos == 0 ? 0 : pos + 1));
  for (char& c : out) {
    if (c == '\n')
      c = ';';
  }
  return out;
}

}  // namespace

const boost::system::error_category& process_category() noexcept {
  static const ErrorCategory<ProcessError> kCategory(
      "lab.process", [](ProcessError e) noexcept -> const char* {
        switch (e) {
          case ProcessError::spawn_failed:
            return "cannot run the program";
          case ProcessError::timed_out:
            return "the program ran past its deadline";
          case ProcessError::failed:
            return "the program failed";
        }
        return "unknown process error";
      });
  return kCategory;
}

std::string describe(std::span<const std::string> argv, const Outcome& outcome) {
  std::string out = argv.empty() ? std::string("(nothing)") : argv.front();
  out += outcome.signal != 0 ? ": killed by signal " + std::to_string(outcome.signal)
                             : ": exit status " + std::to_string(outcome.status);
  if (auto tail = last_lines(outcome.output, 3); !tail.empty())
    out += ": " + tail;
  return out;
}

Result<Outcome> run(std::span<const std::string> argv, const RunOptions& options) {
  if (argv.empty())
    return Error(ProcessError::spawn_failed, "no program given");
  if (options.input.size() > std::size_t{64} * 1024)
    return Error(ProcessError::spawn_failed, "more than 64 KiB of input for " + argv.front());
  const auto paths = candidates(argv.front(), options.env);
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));  // NOLINT: execve's signature
  args.push_back(nullptr);
  std::vector<char*> envp;
  envp.reserve(options.env.size() + 1);
  for (const auto& e : options.env)
    envp.push_back(const_cast<char*>(e.c_str()));  // NOLINT: execve's signature
  envp.push_back(nullptr);
  const std::string root = options.root.string();

  LAB_TRY_ASSIGN(auto out, make_pipe());
  Fd in_read;
  Fd in_write;
  if (!options.input.empty()) {
    LAB_TRY_ASSIGN(auto in, make_pipe());
    in_read = std::move(in.first);
    in_write = std::move(in.second);
  }
  // The exec's errno travels back through a close-on-exec pipe: EOF means exec succeeded.
  LAB_TRY_ASSIGN(auto status_pipe, make_pipe());

  const pid_t pid = ::fork();
  if (pid < 0)
    return Error(ProcessError::spawn_failed, std::string("fork: ") + errno_text(errno));
  if (pid == 0) {
    // Only async-signal-safe calls from here on.
    ::setpgid(0, 0);
    const int in_fd = in_read.get() >= 0 ? in_read.get() : ::open("/dev/null", O_RDONLY);
    ::dup2(in_fd, 0);
    ::dup2(out.second.get(), 1);
    ::dup2(out.second.get(), 2);
    int err = 0;
    if (!root.empty() && (::chroot(root.c_str()) != 0 || ::chdir("/") != 0))
      err = errno;
    if (err == 0) {
      for (const auto& p : paths) {
        ::execve(p.c_str(), args.data(), envp.data());
        if (errno != ENOENT || err == 0)
          err = errno;
      }
    }
    (void)!::write(status_pipe.second.get(), &err, sizeof err);
    ::_exit(127);
  }
  out.second.reset();
  in_read.reset();
  status_pipe.second.reset();
  int exec_errno = 0;
  if (::read(status_pipe.first.get(), &exec_errno, sizeof exec_errno) == sizeof exec_errno) {
    int ignored = 0;
    ::waitpid(pid, &ignored, 0);
    return Error(
        ProcessError::spawn_failed,
        argv.front() + (options.root.empty() ? "" : " in " + root) + ": " + errno_text(exec_errno));
  }
  if (in_write.get() >= 0) {
    std::string_view rest = options.input;
    while (!rest.empty()) {
      const auto n = ::write(in_write.get(), rest.data(), rest.size());
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;  // it exited without reading: its status says what happened
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
    in_write.reset();
  }

  Outcome outcome;
  bool timed_out = false;
  const auto deadline = Clock::now() + options.timeout;
  std::array<char, 8192> buf{};
  for (;;) {
    int wait_ms = -1;
    if (options.timeout.count() > 0) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        ::kill(-pid, SIGKILL);
        timed_out = true;
        break;
      }
      wait_ms = static_cast<int>(std::min<std::int64_t>(left.count(), std::int64_t{60000}));
    }
    pollfd p{out.first.get(), POLLIN, 0};
    const int r = ::poll(&p, 1, wait_ms);
    if (r < 0 && errno == EINTR)
      continue;
    if (r == 0)
      continue;
    const auto n = ::read(out.first.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    outcome.output.append(buf.data(), static_cast<std::size_t>(n));
    if (outcome.output.size() > 2 * options.keep_output)
      outcome.output.erase(0, outcome.output.size() - options.keep_output);
  }
  if (outcome.output.size() > options.keep_output)
    outcome.output.erase(0, outcome.output.size() - options.keep_output);
  // Waited for without reaping, so its group id cannot be reused before whatever it left
  // behind in the group is killed with it.
  siginfo_t info{};
  while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
  }
  ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return Error(ProcessError::timed_out, argv.front() + ": killed after " +
                                              std::to_string(options.timeout.count()) +
                                              " ms: " + last_lines(outcome.output, 3));
  }
  if (WIFEXITED(status)) {
    outcome.status = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    outcome.signal = WTERMSIG(status);
  }
  return outcome;
}

Result<std::string> check_output(std::span<const std::string> argv, const RunOptions& options) {
  LAB_TRY_ASSIGN(auto outcome, run(argv, options));
  if (!outcome.ok())
    return Error(ProcessError::failed, describe(argv, outcome));
  return std::move(outcome.output);
}

}  // namespace lab::shared::process
