#include "bootstrap/rollout/rollout.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

namespace lab::bootstrap::rollout {
namespace {

std::vector<std::string> hosts(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    out.push_back("h" + std::to_string(i));
  }
  return out;
}

Attempt ok() {
  return {Status::joined, false, "confirm", "", "node"};
}
Attempt fail(bool retryable) {
  return {Status::failed, retryable, "connect", "refused", ""};
}
const Sleep kNoSleep = [](std::chrono::milliseconds) {};

TEST(Rollout, RunsEveryHostAndKeepsInputOrder) {
  Policy p;
  p.parallel = 4;
  auto r = run(
      hosts(9), p, [](const std::string&, int) { return ok(); }, {}, kNoSleep);
  ASSERT_EQ(r.size(), 9U);
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(r[i].host, "h" + std::to_string(i));
    EXPECT_EQ(r[i].status, Status::joined);
    EXPECT_EQ(r[i].attempts, 1);
  }
}

TEST(Rollout, NeverRunsMoreThanParallelAtOnceAndReachesIt) {
  Policy p;
  p.parallel = 3;
  std::atomic<int> running{0};
  std::atomic<int> peak{0};
  auto job = [&](const std::string&, int) {
    const int now = ++running;
    int seen = peak.load();
    while (now > seen && !peak.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    --running;
    return ok();
  };
  run(hosts(12), p, job, {}, kNoSleep);
  EXPECT_EQ(peak.load(), 3);
}

TEST(Rollout, CanaryFailureStopsTheBatch) {
  Policy p;
  p.canary = 2;
  std::mutex m;
  std::set<std::string> started;
  auto job = [&](const std::string& h, int) {
    std::lock_guard lock(m);
    started.insert(h);
    return h == "h1" ? fail(false) : ok();
  };
  auto r = run(hosts(6), p, job, {}, kNoSleep);
  EXPECT_EQ(started, (std::set<std::string>{"h0", "h1"}));
  EXPECT_EQ(r[0].status, Status::joined);
  EXPECT_EQ(r[1].status, Status::failed);
  for (int i = 2; i < 6; ++i) {
    EXPECT_EQ(r[i].status, Status::not_started);
    EXPECT_NE(r[i].message.find("canary"), std::string::npos) << r[i].message;
  }
}

TEST(Rollout, StopsStartingHostsOnceMaxFailuresIsExceeded) {
  Policy p;
  p.parallel = 1;
  p.max_failures = 1;
  std::atomic<int> calls{0};
  auto job = [&](const std::string&, int) {
    ++calls;
    return fail(false);
  };
  auto r = run(hosts(5), p, job, {}, kNoSleep);
  EXPECT_EQ(calls.load(), 2);  // the second failure exceeds the budget of one
  EXPECT_EQ(r[0].status, Status::failed);
  EXPECT_EQ(r[1].status, Status::failed);
  EXPECT_EQ(r[2].status, Status::not_started);
  EXPECT_NE(r[4].message.find("max-failures"), std::string::npos) << r[4].message;
}

TEST(Rollout, RetriesConnectionErrorsOnlyWithBackoff) {
  Policy p;
  p.retries = 2;
  p.breaker_threshold = 10;
  std::vector<std::chrono::milliseconds> waits;
  auto sleep = [&](std::chrono::milliseconds d) { waits.push_back(d); };
  auto r = run(
      {"a"}, p, [](const std::string&, int n) { return n < 3 ? fail(true) : ok(); }, {}, sleep);
  EXPECT_EQ(r[0].status, Status::joined);
  EXPECT_EQ(r[0].attempts, 3);
  ASSERT_EQ(waits.size(), 2U);
  EXPECT_LE(waits[0], p.backoff_base);
  EXPECT_LE(waits[1], 2 * p.backoff_base);

  auto r2 = run(
      {"a"}, p, [](const std::string&, int) { return fail(false); }, {}, kNoSleep);
  EXPECT_EQ(r2[0].attempts, 1);  // authentication, host key…: never retried
}

TEST(Rollout, CircuitBreakerOpensAfterConsecutiveConnectionFailures) {
  Policy p;
  p.retries = 10;
  p.breaker_threshold = 3;
  auto r = run(
      {"a"}, p, [](const std::string&, int) { return fail(true); }, {}, kNoSleep);
  EXPECT_EQ(r[0].status, Status::failed);
  EXPECT_EQ(r[0].attempts, 3);
  EXPECT_NE(r[0].message.find("circuit open"), std::string::npos);
}

TEST(Rollout, BackoffIsBoundedByTheCapWithFullJitter) {
  Policy p;
  p.backoff_base = std::chrono::milliseconds(100);
  p.backoff_cap = std::chrono::milliseconds(1000);
  for (std::uint64_t rnd : {0ULL, 1ULL, 99ULL, 12345678901ULL}) {
    for (int retry = 1; retry < 40; ++retry) {
      const auto d = backoff_delay(p, retry, rnd);
      EXPECT_GE(d.count(), 0);
      EXPECT_LE(d, p.backoff_cap);
    }
  }
  EXPECT_EQ(backoff_delay(p, 1, 100), std::chrono::milliseconds(100));
  EXPECT_EQ(backoff_delay(p, 5, 1000), std::chrono::milliseconds(1000));
}

TEST(Rollout, ReportsStartAndFinishForEachHost) {
  Policy p;
  std::mutex m;
  int starts = 0;
  int finishes = 0;
  auto progress = [&](const HostResult&, bool finished) {
    std::lock_guard lock(m);
    (finished ? finishes : starts)++;
  };
  run(
      hosts(4), p, [](const std::string&, int) { return ok(); }, progress, kNoSleep);
  EXPECT_EQ(starts, 4);
  EXPECT_EQ(finishes, 4);
}

}  // namespace
}  // namespace lab::bootstrap::rollout
