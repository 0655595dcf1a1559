// lab serve as a process: configuration errors, the data-directory lock, graceful shutdown, what
// it tells the service manager.
#include "tests/support/notify.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <csignal>

namespace {

using namespace lab::tests;

TEST(Serve, ShowConfigNamesWhereEachValueCameFrom) {
  TempDir dir;
  auto cfg = dir.write("lab.toml", "[serve]\nblocking_threads = 3\n");
  auto r = run({lab_binary(), "serve", "--data-dir", dir.path() / "data", "--config", cfg, "--set",
                "serve.io_threads=2", "--show-config"},
               10s, {{"LAB_LOG_LEVEL", "debug"}});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("serve.io_threads = 2  # --set serve.io_threads"), std::string::npos);
  EXPECT_NE(r.output.find("serve.blocking_threads = 3  # " + cfg.string() + ":2"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("log.level = \"debug\"  # env LAB_LOG_LEVEL"), std::string::npos);
}

TEST(Serve, ConfigErrorsAreUsageErrorsNamingTheKey) {
  TempDir dir;
  auto cfg = dir.write("bad.toml", "[serve]\nio_thread = 2\n");
  auto r = run({lab_binary(), "serve", "--data-dir", dir.path(), "--config", cfg});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find(cfg.string() + ":2: unknown key 'serve.io_thread' (did you mean "
                                         "'serve.io_threads'?)"),
            std::string::npos)
      << r.output;
  auto missing = run({lab_binary(), "serve", "--config", "/nonexistent.toml"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.output.find("/nonexistent.toml"), std::string::npos);
}

TEST(Serve, OneDataDirectoryOneAppliance) {
  TempDir dir;
  auto first = ChildProcess::start({.argv = {lab_binary(), "serve", "--data-dir", dir.path(),
                                             "--set", "coordinator.enabled=false"},
                                    .env = {},
                                    .netns = {},
                                    .log = {}});
  ASSERT_TRUE(wait_until([&] { return first.output().find("msg=ready") != std::string::npos; }))
      << first.output();
  auto second =
      run({lab_binary(), "serve", "--data-dir", dir.path(), "--set", "coordinator.enabled=false"});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(second.output.find("is in use by another lab serve"), std::string::npos);
  EXPECT_EQ(first.stop(), 0) << first.output();
}

TEST(Serve, SigtermStopsPromptlyAndCleanly) {
  TempDir dir;
  auto serve = ChildProcess::start({.argv = {lab_binary(), "serve", "--data-dir", dir.path(),
                                             "--set", "coordinator.enabled=false"},
                                    .env = {},
                                    .netns = {},
                                    .log = {}});
  ASSERT_TRUE(wait_until([&] { return serve.output().find("msg=ready") != std::string::npos; }));
  const auto start = std::chrono::steady_clock::now();
  serve.signal(SIGTERM);
  EXPECT_EQ(serve.wait(5s), 0) << serve.output();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_NE(serve.output().find("msg=stopped"), std::string::npos);
}

TEST(Serve, TellsTheServiceManagerReadyWatchdogAndStopping) {
  TempDir dir;
  const auto path = dir.path() / "notify.sock";
  NotifySocket notify(path);
  auto serve =
      ChildProcess::start({.argv = {lab_binary(), "serve", "--data-dir", dir.path() / "data",
                                    "--set", "coordinator.enabled=false"},
                           .env = {{"NOTIFY_SOCKET", path.string()}, {"WATCHDOG_USEC", "400000"}},
                           .netns = {},
                           .log = {}});
  EXPECT_TRUE(notify.receive_until("READY=1")) << serve.output();
  EXPECT_TRUE(notify.receive_until("WATCHDOG=1")) << serve.output();
  EXPECT_TRUE(notify.receive_until("WATCHDOG=1")) << serve.output();  // again: it keeps pinging
  serve.signal(SIGTERM);
  EXPECT_TRUE(notify.receive_until("STOPPING=1")) << serve.output();
  // The watchdog timer does not hold the shutdown back.
  EXPECT_EQ(serve.wait(5s), 0) << serve.output();
}

}  // namespace
