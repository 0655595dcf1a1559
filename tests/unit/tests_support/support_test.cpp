// The test helpers are code other tests rely on: they get tests of their own.
#include "tests/support/netns.hpp"
#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <csignal>

namespace {

using namespace lab::tests;

TEST(ChildProcess, CapturesOutputAndExitCode) {
  auto r = run({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.output.find("out"), std::string::npos);
  EXPECT_NE(r.output.find("err"), std::string::npos);
}

TEST(ChildProcess, TimeoutKillsTheCommand) {
  auto r = run({"sleep", "30"}, 100ms);
  EXPECT_EQ(r.exit_code, -1);
}

TEST(ChildProcess, StopTerminatesAndReports) {
  auto child = ChildProcess::start({.argv = {"sleep", "30"}, .env = {}, .netns = {}, .log = {}});
  EXPECT_TRUE(child.running());
  EXPECT_EQ(child.stop(), 128 + SIGTERM);
  EXPECT_FALSE(child.running());
}

TEST(ChildProcess, EnvironmentIsPassed) {
  auto r = run({"sh", "-c", "echo $LAB_TEST_VALUE"}, 10s, {{"LAB_TEST_VALUE", "forty-two"}});
  EXPECT_EQ(r.output, "forty-two\n");
}

TEST(ChildProcess, MissingProgramExits127) {
  auto r = run({"/nonexistent/program"});
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_FALSE(have_program("/nonexistent/program"));
  EXPECT_TRUE(have_program("sh"));
}

TEST(NetNs, VethConnectsTwoNamespaces) {
  LAB_REQUIRE_ROOT();
  std::string name;
  {
    NetNs a("supa");
    NetNs b("supb");
    name = a.name();
    Veth link(a, "10.250.0.1/24", b, "10.250.0.2/24");
    auto ping = run({"ip", "netns", "exec", a.name(), "ping", "-c", "1", "-W", "2", "10.250.0.2"});
    EXPECT_EQ(ping.exit_code, 0) << ping.output;
  }
  // The namespace is gone after the test.
  auto list = run({"ip", "netns", "list"});
  EXPECT_EQ(list.output.find(name), std::string::npos);
}

}  // namespace
