#include "shared/cli/cli.hpp"

#include "shared/version/version.hpp"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cstdio>
#include <exception>

namespace lab::shared::cli {

std::string version_line(std::string_view program) {
  return fmt::format("{} {} (commit {})", program, kVersion, kGitCommit);
}

void print_error(std::string_view program, std::string_view message, std::string_view hint) {
  fmt::print(stderr, "{}: error: {}\n", program, message);
  if (!hint.empty()) {
    fmt::print(stderr, "hint: {}\n", hint);
  }
}

void print_error(std::string_view program, const Error& error, std::string_view hint) {
  print_error(program, error.message(), hint);
}

int run(CLI::App& app, int argc, char** argv, const Action& action) {
  app.set_version_flag("--version", version_line(app.get_name()));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    print_error(app.get_name(), e.what(), fmt::format("run '{} --help' for usage", app.get_name()));
    return kExitUsage;
  }
  if (!action) {
    // Nothing selected: show what there is. A program with subcommands was misused.
    fmt::print("{}", app.help());
    const bool has_subcommands = !app.get_subcommands([](CLI::App*) { return true; }).empty();
    return has_subcommands ? kExitUsage : kExitOk;
  }
  try {
    return action();
  } catch (const std::exception& e) {
    print_error(app.get_name(), e.what());
    return kExitFailure;
  }
}

}  // namespace lab::shared::cli
