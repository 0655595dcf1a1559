#pragma once

#include "shared/errors/error.hpp"

#include <functional>
#include <string>
#include <string_view>

namespace CLI {  // NOLINT(readability-identifier-naming): CLI11's namespace
class App;
}

namespace lab::shared::cli {

/// Exit codes of every lab program (DESIGN.md, "Interfaces").
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

/// "lab 0.1.0 (commit 1a2b3c4d5e6f)".
std::string version_line(std::string_view program);

/// The work a parsed command line selected; a subcommand's CLI11 callback sets it.
using Action = std::function<int()>;

/// Adds --version, parses, then runs `action` (or prints help when none was selected).
/// Usage errors print CLI11's message and a hint on stderr and return kExitUsage.
/// An exception escaping the action is reported on stderr and returns kExitFailure.
int run(CLI::App& app, int argc, char** argv, const Action& action);

/// "<program>: error: <message>" and, when given, "hint: <hint>" on stderr.
void print_error(std::string_view program, const Error& error, std::string_view hint = {});
void print_error(std::string_view program, std::string_view message, std::string_view hint = {});

}  // namespace lab::shared::cli
