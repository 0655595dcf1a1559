// lab: the appliance. Parses the command line and hands off to the parts; nothing else.
#include "bootstrap/lab/commands.hpp"
#include "bootstrap/lab/output.hpp"
#include "shared/cli/cli.hpp"
#include "shared/cli/docs.hpp"

#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
  CLI::App app{
      "lab: the lab appliance (coordinator, PXE servers, images, SSH bootstrap) and its "
      "operator CLI",
      "lab"};
  app.require_subcommand(0, 1);
  lab::shared::cli::Action action;
  lab::shared::cli::add_output_option(app, lab::bootstrap::commands::requested_output());
  lab::bootstrap::commands::add_serve(app, action);
  lab::bootstrap::commands::add_token(app, action);
  lab::bootstrap::commands::add_node(app, action);
  lab::bootstrap::commands::add_group(app, action);
  lab::bootstrap::commands::add_check(app, action);
  lab::bootstrap::commands::add_secret(app, action);
  lab::bootstrap::commands::add_audit(app, action);
  lab::bootstrap::commands::add_machine(app, action);
  lab::bootstrap::commands::add_operator(app, action);
  lab::bootstrap::commands::add_bootstrap(app, action);
  lab::bootstrap::commands::add_image(app, action);
  lab::bootstrap::commands::add_examples(app);
  lab::shared::cli::add_docs_commands(app, action);
  lab::shared::cli::describe_inherited_options(app);
  return lab::shared::cli::run(app, argc, argv, action);
}
