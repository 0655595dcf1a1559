// lab serve: runs the appliance.
#include "bootstrap/lab/commands.hpp"
#include "bootstrap/lab/config_sources.hpp"
#include "bootstrap/serve/serve.hpp"
#include "shared/config/config.hpp"
#include "shared/config/template.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <memory>

namespace lab::bootstrap::commands {
namespace {

struct ServeOptions {
  std::vector<std::string> config_files;
  std::vector<std::string> sets;
  std::string data_dir;
  std::string log_level;
  bool show_config = false;
  bool config_template = false;
};

std::string origin_text(const shared::config::Origin& o) {
  switch (o.kind) {
    case shared::config::Origin::Kind::default_value:
      return "default";
    case shared::config::Origin::Kind::file:
      return o.where;
    case shared::config::Origin::Kind::environment:
      return "env " + o.where;
    case shared::config::Origin::Kind::flag:
      return o.where;
  }
  return "";
}

int print_config(const shared::config::Schema& schema, const shared::config::Config& config) {
  for (const auto& spec : schema.keys()) {
    std::string value;
    switch (spec.type) {
      case shared::config::Type::string:
        value = '"' + config.string(spec.key) + '"';
        break;
      case shared::config::Type::integer:
        value = std::to_string(config.integer(spec.key));
        break;
      case shared::config::Type::boolean:
        value = config.boolean(spec.key) ? "true" : "false";
        break;
      case shared::config::Type::duration:
        value = '"' + shared::config::format_duration(config.duration(spec.key)) + '"';
        break;
      case shared::config::Type::string_list:
        value = fmt::format("[\"{}\"]", fmt::join(config.strings(spec.key), "\", \""));
        if (config.strings(spec.key).empty())
          value = "[]";
        break;
      case shared::config::Type::integer_list:
        value = fmt::format("[{}]", fmt::join(config.integers(spec.key), ", "));
        break;
      case shared::config::Type::table_list:
        value = fmt::format("<{} table(s)>", config.tables(spec.key).size());
        break;
    }
    fmt::print("{} = {}  # {}\n", spec.key, value, origin_text(config.origin(spec.key)));
  }
  return shared::cli::kExitOk;
}

}  // namespace

void add_serve(CLI::App& app, shared::cli::Action& action) {
  auto opts = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "Run the appliance: coordinator API and PXE servers (until SIGTERM)");
  cmd->add_option("-c,--config", opts->config_files,
                  "TOML file(s) to read (default: every /etc/lab/*.toml)");
  cmd->add_option("--set", opts->sets, "override any config key: --set dhcp.mode=proxy");
  cmd->add_option("--data-dir", opts->data_dir, "state directory (default /var/lib/lab)");
  cmd->add_option("--log-level", opts->log_level, "trace, debug, info, warn or error");
  cmd->add_flag("--show-config", opts->show_config,
                "print the effective configuration with where each value came from, and exit");
  cmd->add_flag("--config-template", opts->config_template,
                "print the default lab.toml (every key commented out with its default) and exit");
  cmd->callback([opts, &action] {
    action = [opts]() -> int {
      const shared::config::Schema schema = serve::schema();
      if (opts->config_template) {
        fmt::print("{}", shared::config::commented_template(
                             schema,
                             "/etc/lab/lab.toml: the lab appliance's configuration (lab serve).\n"
                             "Every /etc/lab/*.toml but labd.toml is read, in name order; then "
                             "LAB_* variables, then --set and other flags."));
        return shared::cli::kExitOk;
      }
      std::vector<shared::config::Flag> flags;
      if (!opts->data_dir.empty())
        flags.push_back({"data_dir", opts->data_dir, "--data-dir"});
      if (!opts->log_level.empty())
        flags.push_back({"log.level", opts->log_level, "--log-level"});
      auto sources = config_sources(opts->config_files, opts->sets, std::move(flags));
      if (!sources) {
        shared::cli::print_error("lab", sources.error());
        return shared::cli::kExitUsage;
      }
      auto config = shared::config::load(schema, *sources);
      if (!config) {
        shared::cli::print_error("lab", config.error(),
                                 "run 'lab serve --show-config' to see every key and its default");
        return shared::cli::kExitUsage;
      }
      if (opts->show_config)
        return print_config(schema, *config);
      return serve::run(*config);
    };
  });
}

}  // namespace lab::bootstrap::commands
