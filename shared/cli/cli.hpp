#pragma once

#include "shared/errors/error.hpp"

#include <boost/json/fwd.hpp>

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

/// What -o/--output asked for: text (tables for people; "table" is the same), wide (tables
/// with more columns, where a command has them), or a document for scripts.
enum class Output { text, wide, json, yaml };

/// Adds -o/--output to the top-level command. Subcommands with fallthrough hand it up, so it is
/// accepted anywhere on the line: `lab -o json node list`, `lab node list -o yaml`.
void add_output_option(CLI::App& app, Output& output);

/// Whether `output` asks for a document (json or yaml) rather than text.
inline bool is_document(Output output) noexcept {
  return output == Output::json || output == Output::yaml;
}

/// Prints `document` on stdout as `output` asks: indented JSON, or YAML. A document that cannot
/// be written as YAML is reported and printed as JSON.
void print_document(const boost::json::value& document, Output output);

/// An error as the operator reads it: its detail, without the internal error codes it collected
/// on the way (those only with --debug).
std::string error_text(const Error& error);

/// "<program>: error: <message>" and, when given, "hint: <hint>" on stderr.
void print_error(std::string_view program, const Error& error, std::string_view hint = {});
void print_error(std::string_view program, std::string_view message, std::string_view hint = {});

}  // namespace lab::shared::cli
