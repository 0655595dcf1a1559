#pragma once
// Runs the node's health checks on their intervals, on a few worker threads (started with the
// first check, gone with the last), and damps their results into states: a check changes state
// only after `rise` passing or `fall` failing results in a row, so one slow answer does not page
// anyone.

#include "agent/checks/runner.hpp"
#include "shared/protocol/checks.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace lab::agent::checks {

/// The runner's Spec for a check as the bundle carries it.
Spec spec_of(const shared::protocol::Check& check);

/// The damped state after one more result: passing after `rise` passes in a row, failing after
/// `fall` failures in a row, else unchanged ("pending" until one of them happens first).
struct Damper {
  int passes = 0;  // in a row
  int fails = 0;   // in a row
  [[nodiscard]] std::string next(const std::string& status, bool passed, std::int64_t rise,
                                 std::int64_t fall);
};

class Scheduler {
 public:
  /// Called after every run, from a worker thread, without the scheduler's lock held; `changed`
  /// when the damped status moved.
  using OnResult = std::function<void(const shared::protocol::CheckResult& result, bool changed)>;
  /// `now` gives unix seconds (the results' times).
  Scheduler(std::function<std::int64_t()> now, OnResult on_result, std::size_t max_workers = 4);
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;
  /// Stops and joins the workers (waiting for checks in flight; see stop()).
  ~Scheduler();

  /// The checks to run from now on (the node's bundle). A check whose definition did not change
  /// keeps its state and schedule; a new or changed one starts pending and runs at once; one
  /// that is gone stops. Thread-safe.
  void set_checks(const std::vector<shared::protocol::Check>& checks);
  /// States remembered from before a restart (the cache), for checks set_checks() names; call
  /// before set_checks().
  void restore(const std::vector<shared::protocol::CheckResult>& results);
  /// Worker threads running: none before the first check and after the last one goes, else
  /// up to max_workers.
  [[nodiscard]] std::size_t workers() const;
  /// The current states, by name.
  [[nodiscard]] std::vector<shared::protocol::CheckResult> results() const;
  /// Asks the workers to stop; a check in flight ends within its timeout. Returns at once.
  void stop();
  /// After stop(): waits up to `timeout` for the workers to end and joins them; false when a
  /// check still runs (the caller may leave the process without them).
  bool join_for(std::chrono::milliseconds timeout);

 private:
  struct Entry {
    shared::protocol::Check check;
    shared::protocol::CheckResult result;
    Damper damper;
    std::chrono::steady_clock::time_point due;
    bool running = false;
    std::uint64_t generation = 0;  // bumped when the definition changes under a running check
  };
  void work();

  std::function<std::int64_t()> now_;
  OnResult on_result_;
  std::size_t max_workers_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::map<std::string, Entry, std::less<>> entries_;
  std::map<std::string, shared::protocol::CheckResult, std::less<>> restored_;
  std::vector<std::thread> workers_;
  std::size_t working_ = 0;  // workers that have not returned
  std::condition_variable ended_;
  bool stopping_ = false;
};

}  // namespace lab::agent::checks
