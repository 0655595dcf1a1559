#pragma once
// Running one operator-defined health check once, with hard limits on time, output and
// privileges. The checks come from the coordinator in signed bundles, so their author is
// trusted to name a check but not to run anything as root, to outlive its timeout or to make
// labd hold unbounded memory. Scheduling, damping and reporting live elsewhere.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lab::agent::checks {

enum class Kind {
  command,  // a program (or a /bin/sh one-liner) whose exit status decides
  http,     // a GET whose status and body decide
  tcp,      // a TCP connect that decides by succeeding
};

/// One check as the bundle defines it. Fields of other kinds are ignored.
struct Spec {
  /// What operators and reports call the check; run() does not use it.
  std::string name;
  Kind kind = Kind::command;

  /// command: program and arguments, run without a shell so that arguments taken from labels
  /// cannot inject shell syntax. A program without '/' is looked up in the check's PATH.
  std::vector<std::string> argv;
  /// command: argv must be exactly one string, run as `/bin/sh -c <it>`, for checks that need
  /// pipes or globs and whose author accepts the shell's quoting rules.
  bool shell = false;
  /// command: the user the check runs as. uid 0 is always refused: a check is code from the
  /// coordinator, and a compromised coordinator must not get root on every node through it.
  std::string user = "nobody";

  /// http: http:// or https:// only (also for redirects), so a check cannot read local files
  /// (file://) or reach other protocols. Certificates are verified against the system CAs.
  std::string url;
  /// http: 0 accepts any 2xx; otherwise exactly this status. A 3xx here turns off following
  /// redirects, so that the redirect itself can be checked.
  unsigned expect_status = 0;
  /// http: a substring the body must contain (searched in its first 64 KiB); empty = no check.
  std::string expect_body;

  /// tcp: host name or IP address, and port; passed when a connection is established to any
  /// address the host resolves to.
  std::string host;
  std::uint16_t port = 0;

  /// Hard limit on the whole check (process lifetime, HTTP transfer including redirects and
  /// name resolution, TCP resolve and connect). Must be positive and at most 24 hours.
  std::chrono::milliseconds timeout{5000};
};

/// Bytes of output kept in an Outcome: enough to show an operator why a check failed, small
/// enough that thousands of stored results stay cheap.
inline constexpr std::size_t kMaxOutput = 4096;

/// What one run of a check produced.
struct Outcome {
  bool passed = false;
  /// One line for operators, set on success too: "exit status 2", "killed after the 5s timeout
  /// (process group)", "HTTP 503", "more than 5 redirects", "connect: connection refused",
  /// "body does not contain \"ok\"", "refusing to run a check as root", "user 'x' does not exist".
  std::string reason;
  /// command: stdout and stderr interleaved as written; http: the start of the body. At most
  /// kMaxOutput bytes; empty for tcp.
  std::string output;
  /// The output was longer than kMaxOutput (the rest was read and dropped).
  bool truncated = false;
  /// Wall time of the run on the steady clock, so clock steps do not distort it.
  std::chrono::milliseconds duration{0};
};

/// Runs the check once, blocking the calling thread (run it on a worker, not on a strand).
/// Returns within spec.timeout plus a small grace, always: killing and reaping take
/// milliseconds, and a process that SIGKILL does not end at once (uninterruptible sleep) is
/// waited for at most a second more, then reaped by a thread of its own. Never throws: every
/// failure, including an invalid Spec, is an Outcome with passed = false and a reason. Thread-safe;
/// a command check forks, so the calling process must not ignore SIGCHLD (the child could not be
/// reaped to read its status).
Outcome run(const Spec& spec) noexcept;

}  // namespace lab::agent::checks
