#pragma once
// Runs one job per host in batches, the way an operator rolls out to a fleet: canary hosts
// first, then up to `parallel` at a time; no new host is started once too many have failed;
// connection errors are retried with exponential backoff and jitter, behind a per-host circuit
// breaker. The job itself (SSH install, anything else) is a function, so the policy is tested
// on its own.
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace lab::bootstrap::rollout {

enum class Status {
  joined,       // the job succeeded
  skipped,      // nothing to do (already joined)
  failed,       // the job failed and was rolled back
  not_started,  // the batch stopped before this host (canary failed, too many failures)
};
const char* status_name(Status s) noexcept;

/// One attempt's result, from the job.
struct Attempt {
  Status status = Status::failed;
  bool retryable = false;  // a connection error: worth another attempt
  std::string step;        // where it stopped: "connect", "upload", "join", …
  std::string message;
  std::string node_id;
};

struct HostResult {
  std::string host;
  Status status = Status::not_started;
  std::string step;
  std::string message;
  std::string node_id;
  int attempts = 0;
  std::chrono::milliseconds elapsed{0};
};

struct Policy {
  int parallel = 10;
  int canary = 0;                   // hosts run first, alone as a batch; any failure stops all
  std::optional<int> max_failures;  // stop starting hosts once failures exceed this
  int retries = 2;                  // extra attempts after a connection error
  int breaker_threshold = 3;        // consecutive connection failures that open the breaker
  std::chrono::milliseconds backoff_base{500};
  std::chrono::milliseconds backoff_cap{8000};
  std::uint64_t seed = 0;  // jitter; 0 = random
};

/// The delay before retry number `retry` (1-based): full jitter over min(cap, base·2^(retry-1)).
std::chrono::milliseconds backoff_delay(const Policy& policy, int retry, std::uint64_t random);

using Job = std::function<Attempt(const std::string& host, int attempt)>;
/// Called when a host starts and when it finishes (from worker threads, serialised).
using Progress = std::function<void(const HostResult& result, bool finished)>;
/// Sleeps between retries; injected so tests do not wait.
using Sleep = std::function<void(std::chrono::milliseconds)>;

/// Runs `job` for every host under `policy`; returns one result per host, in input order.
std::vector<HostResult> run(const std::vector<std::string>& hosts, const Policy& policy,
                            const Job& job, const Progress& progress = {}, const Sleep& sleep = {});

}  // namespace lab::bootstrap::rollout
