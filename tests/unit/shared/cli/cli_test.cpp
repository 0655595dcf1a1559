#include "shared/cli/cli.hpp"

#include <CLI/CLI.hpp>
#include <gtest/gtest.h>

#include <vector>

namespace {

using namespace lab::shared::cli;

int run_with(std::vector<std::string> args, const Action& action, CLI::App& app) {
  std::vector<char*> argv;
  argv.reserve(args.size());
  for (auto& a : args)
    argv.push_back(a.data());
  return run(app, static_cast<int>(argv.size()), argv.data(), action);
}

TEST(Cli, VersionLineNamesProgramVersionAndCommit) {
  const std::string v = version_line("lab");
  EXPECT_EQ(v.rfind("lab 0.", 0), 0u) << v;
  EXPECT_NE(v.find("(commit "), std::string::npos);
}

TEST(Cli, UsageErrorsExitWithTwo) {
  CLI::App app{"t", "t"};
  testing::internal::CaptureStderr();
  const int rc = run_with({"t", "--no-such-flag"}, {}, app);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, kExitUsage);
  EXPECT_NE(err.find("t: error:"), std::string::npos);
  EXPECT_NE(err.find("hint: run 't --help'"), std::string::npos);
}

TEST(Cli, HelpAndVersionExitZero) {
  CLI::App app{"t", "t"};
  testing::internal::CaptureStdout();
  EXPECT_EQ(run_with({"t", "--help"}, {}, app), kExitOk);
  CLI::App app2{"t", "t"};
  EXPECT_EQ(run_with({"t", "--version"}, {}, app2), kExitOk);
  const std::string out = testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("Usage:"), std::string::npos);
  EXPECT_NE(out.find("t 0."), std::string::npos);
}

TEST(Cli, ActionResultIsTheExitCodeAndExceptionsAreFailures) {
  CLI::App app{"t", "t"};
  EXPECT_EQ(run_with(
                {"t"}, [] { return 7; }, app),
            7);
  CLI::App app2{"t", "t"};
  testing::internal::CaptureStderr();
  EXPECT_EQ(run_with(
                {"t"}, []() -> int { throw std::runtime_error("boom"); }, app2),
            kExitFailure);
  EXPECT_NE(testing::internal::GetCapturedStderr().find("t: error: boom"), std::string::npos);
}

// An unknown or missing command is named with the command it was given to, the nearest known
// one, and that command's own --help.
TEST(Cli, UnknownCommandSuggestsTheNearestAndItsHelp) {
  auto make = [](CLI::App& app) {
    CLI::App* node = app.add_subcommand("node", "nodes");
    node->require_subcommand(1);
    node->add_option("-o,--output", "format");
    node->fallthrough();  // as lab's nouns do: an unknown word ends up with the top command
    node->add_subcommand("list", "list them");
    node->add_subcommand("show", "show one");
  };
  CLI::App app{"t", "t"};
  make(app);
  testing::internal::CaptureStderr();
  EXPECT_EQ(run_with({"t", "node", "-o", "json", "lsit"}, {}, app), kExitUsage);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("t: error: unknown command 'lsit' for 't node'; did you mean 'list'?"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("hint: run 't node --help' for usage"), std::string::npos) << err;

  CLI::App far{"t", "t"};
  make(far);
  testing::internal::CaptureStderr();
  EXPECT_EQ(run_with({"t", "node", "frobnicate"}, {}, far), kExitUsage);
  err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("unknown command 'frobnicate' for 't node'\n"), std::string::npos) << err;

  CLI::App none{"t", "t"};
  make(none);
  testing::internal::CaptureStderr();
  EXPECT_EQ(run_with({"t", "node"}, {}, none), kExitUsage);
  err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("'t node' needs a command: list, show"), std::string::npos) << err;
}

TEST(Cli, MissingSubcommandPrintsHelpAndIsAUsageError) {
  CLI::App app{"t", "t"};
  app.add_subcommand("serve", "serve");
  testing::internal::CaptureStdout();
  EXPECT_EQ(run_with({"t"}, {}, app), kExitUsage);
  EXPECT_NE(testing::internal::GetCapturedStdout().find("serve"), std::string::npos);
}

}  // namespace
