#include "shared/process/process.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

namespace lab::shared::process {
namespace {

using namespace std::chrono_literals;
using Args = std::vector<std::string>;

bool dead(int pid) {
  for (int i = 0; i < 100; ++i) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line))
      return true;
    const auto close = line.rfind(')');
    if (close != std::string::npos && line.substr(close + 2, 1) == "Z")
      return true;
    ::usleep(20000);
  }
  return false;
}

TEST(Process, KeepsOutputAndExitStatus) {
  auto r = run(Args{"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->status, 3);
  EXPECT_EQ(r->signal, 0);
  EXPECT_EQ(r->output, "out\nerr\n");
  EXPECT_FALSE(r->ok());
}

TEST(Process, CheckOutputNamesTheProgramAndItsLastLines) {
  auto ok = check_output(Args{"echo", "hello"});
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(*ok, "hello\n");

  auto failed = check_output(Args{"sh", "-c", "echo one; echo two; echo three; echo four; exit 1"});
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error(), ProcessError::failed);
  EXPECT_EQ(failed.error().detail(), "sh: exit status 1: two;three;four");
}

TEST(Process, AMissingProgramIsASpawnError) {
  auto r = run(Args{"lab-no-such-program"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), ProcessError::spawn_failed);
  EXPECT_NE(r.error().detail().find("lab-no-such-program"), std::string::npos);
}

TEST(Process, TheEnvironmentIsOnlyWhatIsGiven) {
  ::setenv("LAB_PROCESS_TEST_LEAK", "1", 1);  // NOLINT(concurrency-mt-unsafe): one thread
  auto r = check_output(Args{"env"});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->find("LAB_PROCESS_TEST_LEAK"), std::string::npos);
  EXPECT_NE(r->find("LANG=C.UTF-8"), std::string::npos);
}

TEST(Process, InputIsWrittenThenClosed) {
  RunOptions o;
  o.input = "label: gpt\nsize=1MiB\n";
  auto r = check_output(Args{"cat"}, o);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, o.input);
  o.input.assign(std::size_t{65} * 1024, 'x');
  EXPECT_FALSE(run(Args{"cat"}, o));
}

TEST(Process, OnlyTheTailOfTheOutputIsKept) {
  RunOptions o;
  o.keep_output = 100;
  auto r = run(Args{"sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' a; echo END"}, o);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->output.size(), 100U);
  EXPECT_TRUE(r->output.ends_with("aaaEND\n"));
}

TEST(Process, TheDeadlineKillsTheWholeGroup) {
  RunOptions o;
  o.timeout = 300ms;
  const auto started = std::chrono::steady_clock::now();
  // The child keeps the output pipe open too: only killing the group ends the read.
  auto r = run(Args{"sh", "-c", "sleep 30 & echo $! ; sleep 30"}, o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), ProcessError::timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
  const auto detail = r.error().detail();
  const auto child = std::stoi(detail.substr(detail.rfind(' ') + 1));
  // Gone, or a zombie left to whichever init adopted it: not running any more.
  EXPECT_TRUE(dead(child));
}

TEST(Process, SignalledProgramsSayWhichSignal) {
  auto r = run(Args{"sh", "-c", "kill -TERM $$"});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->signal, SIGTERM);
  EXPECT_EQ(describe(Args{"sh"}, *r), "sh: killed by signal 15");
}

}  // namespace
}  // namespace lab::shared::process
