// The scheduler of a node's health checks: damping (rise/fall), intervals, redefinition, and
// that a check that hangs neither holds the others nor outlives its timeout. Real programs.
#include "agent/checks/scheduler.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>

namespace {

using lab::agent::checks::Damper;
using lab::agent::checks::Scheduler;
namespace proto = lab::shared::protocol;
using namespace std::chrono_literals;

TEST(CheckDamper, ChangesStateOnlyAfterRiseOrFallInARow) {
  Damper d;
  std::string s = "pending";
  s = d.next(s, true, 2, 3);
  EXPECT_EQ(s, "pending");
  s = d.next(s, true, 2, 3);
  EXPECT_EQ(s, "passing");
  s = d.next(s, false, 2, 3);
  s = d.next(s, false, 2, 3);
  EXPECT_EQ(s, "passing") << "two failures of three";
  s = d.next(s, true, 2, 3);  // the run of failures is broken
  s = d.next(s, false, 2, 3);
  s = d.next(s, false, 2, 3);
  EXPECT_EQ(s, "passing");
  s = d.next(s, false, 2, 3);
  EXPECT_EQ(s, "failing");
  s = d.next(s, true, 2, 3);
  EXPECT_EQ(s, "failing");
  s = d.next(s, true, 2, 3);
  EXPECT_EQ(s, "passing");
  Damper first;
  EXPECT_EQ(first.next("pending", false, 1, 1), "failing") << "fall 1: the first failure";
}

proto::Check command(const std::string& name, std::vector<std::string> argv, int interval = 1) {
  proto::Check c;
  c.name = name;
  c.command = std::move(argv);
  c.interval_seconds = interval;
  c.timeout_seconds = 1;
  c.rise = 1;
  c.fall = 1;
  // Checks never run as root; as root the tests use nobody, else the test's own user.
  c.user = lab::tests::is_root() ? "nobody" : lab::tests::run({"id", "-un"}).output;
  while (!c.user.empty() && c.user.back() == '\n')
    c.user.pop_back();
  return c;
}

// Results as the callback saw them.
struct Seen {
  std::mutex mutex;
  std::map<std::string, std::vector<proto::CheckResult>> results;
  std::map<std::string, int> changes;
  Scheduler::OnResult fn() {
    return [this](const proto::CheckResult& r, bool changed) {
      const std::lock_guard lock(mutex);
      results[r.name].push_back(r);
      changes[r.name] += changed ? 1 : 0;
    };
  }
  std::size_t runs(const std::string& name) {
    const std::lock_guard lock(mutex);
    return results[name].size();
  }
  proto::CheckResult last(const std::string& name) {
    const std::lock_guard lock(mutex);
    return results[name].empty() ? proto::CheckResult{} : results[name].back();
  }
};

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST(CheckScheduler, RunsEachCheckOnItsIntervalAndFollowsAFlag) {
  lab::tests::TempDir dir;
  std::filesystem::permissions(dir.path(), std::filesystem::perms::all);  // nobody reads it
  const auto flag = dir / "flag";
  Seen seen;
  Scheduler s(unix_now, seen.fn());
  s.set_checks({command("flag", {"test", "-e", flag.string()}), command("ok", {"true"})});
  // The two run on their own workers: either may report first.
  ASSERT_TRUE(
      lab::tests::wait_until([&] { return seen.runs("flag") >= 1 && seen.runs("ok") >= 1; }, 5s));
  EXPECT_EQ(seen.last("flag").status, "failing");
  EXPECT_EQ(seen.last("flag").reason, "exit status 1");
  EXPECT_EQ(seen.last("ok").status, "passing");
  dir.write("flag", "");
  ASSERT_TRUE(lab::tests::wait_until([&] { return seen.last("flag").status == "passing"; }, 5s));
  EXPECT_GE(seen.runs("flag"), 2U);
  EXPECT_EQ(seen.changes["flag"], 2) << "pending -> failing -> passing";
  // About one run a second, not a busy loop.
  const auto before = seen.runs("ok");
  std::this_thread::sleep_for(2500ms);
  const auto runs = seen.runs("ok") - before;
  EXPECT_GE(runs, 1U);
  EXPECT_LE(runs, 4U);
  s.stop();
  EXPECT_TRUE(s.join_for(5s));
}

TEST(CheckScheduler, AHangingCheckIsKilledAtItsTimeoutAndDoesNotHoldTheOthers) {
  Seen seen;
  Scheduler s(unix_now, seen.fn(), 2);
  s.set_checks({command("hang", {"sleep", "300"}, 5), command("ok", {"true"})});
  ASSERT_TRUE(lab::tests::wait_until([&] { return seen.runs("hang") >= 1; }, 5s));
  EXPECT_EQ(seen.last("hang").status, "failing");
  EXPECT_NE(seen.last("hang").reason.find("timeout"), std::string::npos)
      << seen.last("hang").reason;
  EXPECT_GE(seen.runs("ok"), 1U);
  s.stop();
  EXPECT_TRUE(s.join_for(5s));
}

TEST(CheckScheduler, ChangedDefinitionsStartOverAndRemovedChecksStop) {
  Seen seen;
  Scheduler s(unix_now, seen.fn());
  s.set_checks({command("a", {"true"}), command("b", {"false"})});
  ASSERT_TRUE(lab::tests::wait_until(
      [&] { return seen.last("a").status == "passing" && seen.last("b").status == "failing"; },
      5s));
  // a unchanged keeps its state; b now runs `true`; c is new and pending until it runs.
  s.set_checks({command("a", {"true"}), command("b", {"true"}), command("c", {"true"})});
  auto results = s.results();
  ASSERT_EQ(results.size(), 3U);
  EXPECT_EQ(results[0].status, "passing");
  EXPECT_EQ(results[1].status, "pending") << "a new definition starts over";
  ASSERT_TRUE(lab::tests::wait_until([&] { return seen.last("b").status == "passing"; }, 5s));
  s.set_checks({command("c", {"true"})});
  const auto a_runs = seen.runs("a");
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(seen.runs("a"), a_runs) << "a removed check no longer runs";
  ASSERT_EQ(s.results().size(), 1U);
  s.stop();
  EXPECT_TRUE(s.join_for(5s));
}

TEST(CheckScheduler, RestoredStatesAreKeptUntilTheDampingSaysOtherwise) {
  Seen seen;
  Scheduler s(unix_now, seen.fn());
  proto::CheckResult kept;
  kept.name = "a";
  kept.status = "failing";
  kept.since = 42;
  s.restore({kept});
  auto check = command("a", {"false"});
  check.fall = 3;
  s.set_checks({check});
  EXPECT_EQ(s.results()[0].status, "failing");
  EXPECT_EQ(s.results()[0].since, 42);
  ASSERT_TRUE(lab::tests::wait_until([&] { return seen.runs("a") >= 1; }, 5s));
  EXPECT_EQ(seen.last("a").since, 42) << "still failing: the state did not change";
  s.stop();
  EXPECT_TRUE(s.join_for(5s));
}

TEST(CheckScheduler, WorkersStartWithTheFirstCheckAndLeaveWithTheLast) {
  Seen seen;
  Scheduler s(unix_now, seen.fn(), 4);
  s.set_checks({});
  EXPECT_EQ(s.workers(), 0U) << "a node without checks holds no thread for them";
  s.set_checks({command("a", {"true"}), command("b", {"true"})});
  EXPECT_EQ(s.workers(), 2U) << "no more workers than checks";
  ASSERT_TRUE(lab::tests::wait_until([&] { return seen.runs("b") >= 1; }, 5s));
  s.set_checks({});
  ASSERT_TRUE(lab::tests::wait_until([&] { return s.workers() == 0; }, 5s));
  // And back: the workers that left are joined, new ones run the new checks.
  s.set_checks({command("c", {"true"})});
  EXPECT_EQ(s.workers(), 1U);
  ASSERT_TRUE(lab::tests::wait_until([&] { return seen.runs("c") >= 1; }, 5s));
  EXPECT_EQ(seen.last("c").status, "passing");
  s.stop();
  EXPECT_TRUE(s.join_for(5s));
}

}  // namespace
