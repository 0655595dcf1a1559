// One example per command, shown in its --help and its manual page: the line an operator would
// type first, kept here in one table so they read as a whole.
#include "bootstrap/lab/commands.hpp"
#include "shared/cli/docs.hpp"

#include <CLI/CLI.hpp>

#include <array>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace lab::bootstrap::commands {
namespace {

constexpr std::array<std::pair<std::string_view, std::string_view>, 35> kExamples{{
    {"serve", "lab serve --data-dir /var/lib/lab --set dhcp.enabled=true"},
    {"token create", "lab token create --labels role=web --ttl 1h > join.txt"},
    {"token list", "lab token list -o wide"},
    {"token revoke", "lab token revoke 3f2a9c1b7d4e6a05"},
    {"node list", "lab node list -s 'role=web,env in (prod)' -o wide"},
    {"node show", "lab node show web-1 -o yaml"},
    {"node label", "lab node label web-1 env=prod tier=front --overwrite"},
    {"node unlabel", "lab node unlabel web-1 tier"},
    {"node revoke", "lab node revoke web-1"},
    {"node delete", "lab node revoke web-1 && lab node delete web-1"},
    {"node accept", "lab node accept rack3-07"},
    {"node reinstall", "lab node reinstall web-1"},
    {"node macs", "lab node macs web-1 --add 52:54:00:12:34:56"},
    {"group set", "lab group set web --selector role=web --include canary"},
    {"group list", "lab group list -o json"},
    {"group members", "lab group members web"},
    {"group delete", "lab group delete web"},
    {"check set",
     "lab check set nginx --selector role=web --http http://127.0.0.1/ --interval 10s"},
    {"check list", "lab check list"},
    {"check rm", "lab check rm nginx"},
    {"secret set", "lab secret set db-pass --entitlement role=db < value"},
    {"secret list", "lab secret list"},
    {"secret grant", "lab secret grant db-pass 'role in (db,backup)'"},
    {"secret delete", "lab secret delete db-pass"},
    {"audit list", "lab audit list --since 1h --limit 20"},
    {"audit verify", "lab audit verify --against audit.jsonl"},
    {"audit export", "lab audit export --out audit.jsonl"},
    {"machine register", "lab machine register 52:54:00:12:34:56 --ip 10.0.0.5"},
    {"machine list", "lab machine list"},
    {"machine timeline", "lab machine timeline 52:54:00:12:34:56"},
    {"operator add", "lab operator add alice --ttl 30d > alice.token"},
    {"operator list", "lab operator list"},
    {"operator revoke", "lab operator revoke alice"},
    {"bootstrap ssh", "lab bootstrap ssh root@host1 root@host2 --labels role=web --canary 1"},
    {"image agent-os", "lab image agent-os --out /var/lib/lab/boot/agent"},
}};

}  // namespace

void add_examples(CLI::App& app) {
  for (const auto& [path, example] : kExamples) {
    CLI::App* command = &app;
    std::istringstream words{std::string(path)};
    for (std::string word; words >> word;) {
      auto found = command->get_subcommands([&](CLI::App* s) { return s->get_name() == word; });
      if (found.empty())  // a renamed command: every run of lab says so until this is fixed
        throw std::logic_error("example for unknown command 'lab " + std::string(path) + "'");
      command = found.front();
    }
    shared::cli::add_example(*command, example);
  }
}

}  // namespace lab::bootstrap::commands
