#include "shared/cli/cli.hpp"

#include "shared/text/suggest.hpp"
#include "shared/version/version.hpp"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <regex>
#include <string>
#include <vector>

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

namespace {

bool& debug_output() {
  static bool debug = false;
  return debug;
}

}  // namespace

std::string error_text(const Error& error) {
  if (debug_output())
    return error.message();
  // The internal codes ("(lab.protocol: invalid join string)") a detail collected on its way
  // up say where, not what: shown with --debug only.
  static const std::regex kCode(R"( \(lab\.[a-z_.]+: [^()]*\))");
  std::string text = error.detail().empty() ? error.code().message() : error.detail();
  return std::regex_replace(text, kCode, "");
}

void print_error(std::string_view program, const Error& error, std::string_view hint) {
  print_error(program, error_text(error), hint);
}

namespace {

// The deepest subcommand the command line reached ("lab node" for `lab node lsit`).
const CLI::App& deepest(const CLI::App& app) {
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App* s) { return s->parsed(); }))
    return deepest(*sub);
  return app;
}

std::string command_path(const CLI::App& app) {
  std::string path = app.get_name();
  for (const CLI::App* p = app.get_parent(); p != nullptr; p = p->get_parent())
    path.insert(0, " ").insert(0, p->get_name());
  return path;
}

std::vector<std::string> subcommand_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    names.push_back(sub->get_name());
  return names;
}

// A word where a command of `at` was expected: the first argument left over that is not an
// option (a subcommand that falls through to its parent leaves it with the top one).
std::string unknown_command(const CLI::App& top, const CLI::App& at) {
  for (const CLI::App* app : {&at, &top})
    for (const std::string& arg : app->remaining(true))
      if (!arg.empty() && arg.front() != '-')
        return arg;
  return {};
}

// A usage error, said for the command it is about: an unknown or missing command is named with
// the nearest known one; the hint points at that command's own --help.
int usage_error(const CLI::App& app, const CLI::ParseError& e) {
  const CLI::App& at = deepest(app);
  const std::string path = command_path(at);
  const std::string help = fmt::format("run '{} --help' for usage", path);
  const std::vector<std::string> commands = subcommand_names(at);
  if (!commands.empty() && at.get_subcommands().empty()) {
    if (const std::string word = unknown_command(app, at); !word.empty()) {
      const std::string near = text::closest(word, commands);
      print_error(app.get_name(),
                  fmt::format("unknown command '{}' for '{}'{}", word, path,
                              near.empty() ? "" : fmt::format("; did you mean '{}'?", near)),
                  help);
      return kExitUsage;
    }
    if (at.get_require_subcommand_min() > 0) {
      std::string list;
      for (const auto& c : commands)
        list += (list.empty() ? "" : ", ") + c;
      print_error(app.get_name(), fmt::format("'{}' needs a command: {}", path, list), help);
      return kExitUsage;
    }
  }
  print_error(app.get_name(), e.what(), help);
  return kExitUsage;
}

}  // namespace

int run(CLI::App& app, int argc, char** argv, const Action& action) {
  app.set_version_flag("--version", version_line(app.get_name()));
  app.add_flag("--debug", debug_output(), "show the internal error codes behind an error");
  // `PROGRAM help node list` is `PROGRAM node list --help`.
  app.add_subcommand("help", "Help for a command: " + app.get_name() + " help COMMAND...");
  std::vector<std::string> args(argv + std::min(argc, 1), argv + argc);
  if (!args.empty() && args.front() == "help") {
    args.erase(args.begin());
    args.emplace_back("--help");
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes the words last first
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return usage_error(app, e);
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
