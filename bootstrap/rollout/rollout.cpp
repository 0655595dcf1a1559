#include "bootstrap/rollout/rollout.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <random>
#include <thread>

namespace lab::bootstrap::rollout {

const char* status_name(Status s) noexcept {
  switch (s) {
    case Status::joined:
      return "joined";
    case Status::skipped:
      return "skipped";
    case Status::failed:
      return "failed";
    case Status::not_started:
      return "not_started";
  }
  return "unknown";
}

std::chrono::milliseconds backoff_delay(const Policy& policy, int retry, std::uint64_t random) {
  const int shift = std::clamp(retry - 1, 0, 30);
  const auto base = policy.backoff_base.count();
  const auto cap = policy.backoff_cap.count();
  const auto ceiling = std::min<std::int64_t>(cap, base << shift);
  if (ceiling <= 0) {
    return std::chrono::milliseconds(0);
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(random % (ceiling + 1)));
}

namespace {

class Runner {
 public:
  Runner(const std::vector<std::string>& hosts, const Policy& policy, const Job& job,
         const Progress& progress, const Sleep& sleep)
      : hosts_(hosts),
        policy_(policy),
        job_(job),
        progress_(progress),
        sleep_(sleep ? sleep : [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }),
        rng_(policy.seed != 0 ? policy.seed : std::random_device{}()),
        results_(hosts.size()) {
    for (std::size_t i = 0; i < hosts.size(); ++i) {
      results_[i].host = hosts[i];
    }
  }

  std::vector<HostResult> run() {
    const auto canary = static_cast<std::size_t>(
        std::clamp<int>(policy_.canary, 0, static_cast<int>(hosts_.size())));
    batch(0, canary);
    if (failures_ > 0) {
      stop_reason_ = "a canary host failed";
    } else {
      batch(canary, hosts_.size());
    }
    for (auto& r : results_) {
      if (r.status == Status::not_started && r.attempts == 0) {
        r.message = stop_reason_.empty() ? "not started" : "not started: " + stop_reason_;
      }
    }
    return std::move(results_);
  }

 private:
  // Runs hosts [begin, end) with up to `parallel` workers pulling from a shared cursor.
  void batch(std::size_t begin, std::size_t end) {
    if (begin >= end) {
      return;
    }
    std::atomic<std::size_t> next{begin};
    const auto workers = std::clamp<std::size_t>(
        static_cast<std::size_t>(std::max(policy_.parallel, 1)), 1, end - begin);
    std::vector<std::jthread> threads;
    threads.reserve(workers);
    for (std::size_t w = 0; w < workers; ++w) {
      threads.emplace_back([&] {
        while (true) {
          if (too_many_failures()) {
            return;
          }
          const std::size_t i = next.fetch_add(1);
          if (i >= end) {
            return;
          }
          one_host(i);
        }
      });
    }
  }

  bool too_many_failures() {
    std::lock_guard lock(mutex_);
    if (policy_.max_failures && failures_ > *policy_.max_failures) {
      if (stop_reason_.empty()) {
        stop_reason_ = std::to_string(failures_) + " host(s) failed, more than --max-failures " +
                       std::to_string(*policy_.max_failures);
      }
      return true;
    }
    return false;
  }

  void one_host(std::size_t i) {
    HostResult result = results_[i];
    report(result, false);
    const auto started = std::chrono::steady_clock::now();
    int consecutive_connection_failures = 0;
    Attempt attempt;
    for (int n = 1;; ++n) {
      attempt = job_(hosts_[i], n);
      result.attempts = n;
      if (attempt.status != Status::failed || !attempt.retryable) {
        break;
      }
      ++consecutive_connection_failures;
      if (consecutive_connection_failures >= policy_.breaker_threshold) {
        attempt.message += " (circuit open after " +
                           std::to_string(consecutive_connection_failures) +
                           " connection failures)";
        break;
      }
      if (n > policy_.retries) {
        break;
      }
      sleep_(backoff_delay(policy_, n, random()));
    }
    result.status = attempt.status;
    result.step = attempt.step;
    result.message = attempt.message;
    result.node_id = attempt.node_id;
    result.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    {
      std::lock_guard lock(mutex_);
      if (result.status == Status::failed) {
        ++failures_;
      }
      results_[i] = result;
    }
    report(result, true);
  }

  std::uint64_t random() {
    std::lock_guard lock(mutex_);
    return rng_();
  }

  void report(const HostResult& r, bool finished) {
    if (progress_) {
      std::lock_guard lock(progress_mutex_);
      progress_(r, finished);
    }
  }

  const std::vector<std::string>& hosts_;
  const Policy& policy_;
  const Job& job_;
  const Progress& progress_;
  Sleep sleep_;
  std::mutex mutex_;
  std::mutex progress_mutex_;
  std::mt19937_64 rng_;
  std::vector<HostResult> results_;
  int failures_ = 0;
  std::string stop_reason_;
};

}  // namespace

std::vector<HostResult> run(const std::vector<std::string>& hosts, const Policy& policy,
                            const Job& job, const Progress& progress, const Sleep& sleep) {
  return Runner(hosts, policy, job, progress, sleep).run();
}

}  // namespace lab::bootstrap::rollout
