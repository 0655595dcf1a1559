#pragma once
// Each `lab <noun>` registers its subcommands from its own file; main.cpp only calls these.

#include "shared/cli/cli.hpp"

namespace CLI {  // NOLINT(readability-identifier-naming): CLI11's namespace
class App;
}

namespace lab::bootstrap::commands {

void add_serve(CLI::App& app, shared::cli::Action& action);
void add_bootstrap(CLI::App& app, shared::cli::Action& action);

}  // namespace lab::bootstrap::commands
