// labd: the node agent. Parses the command line and hands off to the parts; nothing else.
#include "shared/cli/cli.hpp"

#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
  CLI::App app{"labd: the lab node agent (join, TPM-sealed cache, sync, local API)", "labd"};
  lab::shared::cli::Action action;
  return lab::shared::cli::run(app, argc, argv, action);
}
