#pragma once
// Each `lab <noun>` registers its subcommands from its own file; main.cpp only calls these.

#include "shared/cli/cli.hpp"
#include "shared/errors/error.hpp"
#include "shared/names/names.hpp"

#include <boost/json/object.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace CLI {  // NOLINT(readability-identifier-naming): CLI11's namespace
class App;
class Validator;
}  // namespace CLI

namespace lab::bootstrap::commands {

void add_serve(CLI::App& app, shared::cli::Action& action);
void add_bootstrap(CLI::App& app, shared::cli::Action& action);
void add_image(CLI::App& app, shared::cli::Action& action);
void add_token(CLI::App& app, shared::cli::Action& action);
void add_node(CLI::App& app, shared::cli::Action& action);
void add_group(CLI::App& app, shared::cli::Action& action);
void add_check(CLI::App& app, shared::cli::Action& action);
void add_secret(CLI::App& app, shared::cli::Action& action);
void add_audit(CLI::App& app, shared::cli::Action& action);
void add_machine(CLI::App& app, shared::cli::Action& action);
void add_operator(CLI::App& app, shared::cli::Action& action);

/// "k=v" / "k=v,k2=v2" arguments as a JSON object of validated labels (LabError::usage).
Result<boost::json::object> parse_labels_arg(const std::vector<std::string>& items);

/// A MAC address as "52:54:00:12:34:56" from that form, "52-54-00-12-34-56" or "525400123456"
/// in any case; LabError::usage naming the option ("--add"; empty for a positional argument)
/// and the value otherwise.
Result<std::string> parse_mac_arg(std::string_view text, std::string_view option = {});

/// An IPv4 or IPv6 address literal; LabError::usage naming the option and the value otherwise.
Result<void> check_ip_arg(std::string_view text, std::string_view option = {});

/// A duration above zero ("90s", "15m", "12h", "30d"), as the coordinator takes it;
/// LabError::usage naming the option and the value otherwise.
Result<void> check_duration_arg(std::string_view text, std::string_view option);

/// An example line for each command's --help and manual page (examples.cpp).
void add_examples(CLI::App& app);

/// A CLI11 check that refuses a value that is not a good name of this kind (exit 2, before
/// anything is sent), with the coordinator's own rule.
CLI::Validator name_arg(shared::names::Kind kind);

/// A CLI11 check that refuses a label selector that does not parse (exit 2), showing it with a
/// caret under the offending character.
CLI::Validator selector_arg();

}  // namespace lab::bootstrap::commands
