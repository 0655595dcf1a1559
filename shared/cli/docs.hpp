#pragma once
// What a program says about its own command tree, generated from that tree so that it cannot
// drift from the parser: shell completion scripts, manual pages, and the inherited options and
// examples shown in each command's --help.

#include "shared/cli/cli.hpp"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lab::shared::cli {

/// A completion script for `shell` ("bash", "zsh" or "fish"): commands, options and -o values
/// at every level of the tree. Empty for another shell.
std::string completion_script(const CLI::App& app, std::string_view shell);

/// One manual page (section 1) per command: {"lab-node-list.1", roff text}, the program's own
/// page first ("lab.1").
std::vector<std::pair<std::string, std::string>> manual_pages(const CLI::App& app);

/// Adds `PROGRAM completion bash|zsh|fish` and `PROGRAM man --out DIR`.
void add_docs_commands(CLI::App& app, Action& action);

/// Appends "Example:" lines to a command's --help (and its manual page).
void add_example(CLI::App& command, std::string_view example);

/// Appends to each subcommand's --help the options it takes from the commands above it (with
/// fallthrough they may be given after it). Run once the tree is complete.
void describe_inherited_options(CLI::App& app);

}  // namespace lab::shared::cli
