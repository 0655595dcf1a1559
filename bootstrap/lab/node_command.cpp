// lab node list|show|label|unlabel|revoke|accept.
#include "bootstrap/lab/commands.hpp"
#include "bootstrap/lab/output.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

namespace lab::bootstrap::commands {
namespace {

namespace json = boost::json;

void node_table(const json::value& nodes) {
  Table t({"ID", "NAME", "STATE", "LABELS", "GROUPS", "LAST SEEN"});
  if (nodes.is_array()) {
    for (const auto& n : nodes.get_array()) {
      t.add({text(n, "id"), text(n, "name"), text(n, "state"), labels_text(n, "labels"),
             list_text(n, "groups"), format_time(integer(n, "last_seen"))});
    }
  }
  t.print();
}

void node_details(const json::value& n) {
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"id", text(n, "id")},
      {"name", text(n, "name")},
      {"state", text(n, "state")},
      {"macs", list_text(n, "macs")},
      {"labels", labels_text(n, "labels")},
      {"groups", list_text(n, "groups")},
      {"agent", text(n, "agent_version")},
      {"created", format_time(integer(n, "created_at"))},
      {"last seen", format_time(integer(n, "last_seen"))},
      {"certificate", text(n, "cert_serial")},
      {"cert expires", format_time(integer(n, "cert_expires_at"))},
  };
  for (const auto& [k, v] : rows)
    fmt::print("{:<13} {}\n", k + ":", v.empty() ? "-" : v);
}

// Prints a node answer (label/accept) the way the operator asked.
Result<void> show(const json::value& n, const ClientFlags& f) {
  if (f.json())
    print_json(n);
  else
    node_details(n);
  return {};
}

}  // namespace

void add_node(CLI::App& app, shared::cli::Action& action) {
  auto flags = std::make_shared<ClientFlags>();
  CLI::App* noun = app.add_subcommand("node", "Nodes: list, show, label, revoke, accept");
  noun->require_subcommand(1);
  add_client_flags(*noun, flags);

  auto selector = std::make_shared<std::string>();
  add_verb(*noun, "list", "List nodes, optionally those a selector matches", action, flags,
           [selector](ApiClient& api, const ClientFlags& f) -> Result<void> {
             std::string path = "/v1/nodes";
             if (!selector->empty())
               path += "?selector=" + url_encode(*selector);
             LAB_TRY_ASSIGN(json::value r, api.call("GET", path));
             if (f.json())
               print_json(r);
             else
               node_table(r);
             return {};
           })
      ->add_option("-s,--selector", *selector, "label selector: role=web,env in (prod),!gpu");

  auto id = std::make_shared<std::string>();
  add_verb(*noun, "show", "Show one node (by id or name)", action, flags,
           [id](ApiClient& api, const ClientFlags& f) -> Result<void> {
             LAB_TRY_ASSIGN(json::value r, api.call("GET", "/v1/nodes/" + url_encode(*id)));
             return show(r, f);
           })
      ->add_option("node", *id, "node id or name")
      ->required();

  auto label_id = std::make_shared<std::string>();
  auto labels = std::make_shared<std::vector<std::string>>();
  CLI::App* label = add_verb(
      *noun, "label", "Set labels on a node", action, flags,
      [label_id, labels](ApiClient& api, const ClientFlags& f) -> Result<void> {
        LAB_TRY_ASSIGN(json::object set, parse_labels_arg(*labels));
        LAB_TRY_ASSIGN(json::value r,
                       api.call_json("PATCH", "/v1/nodes/" + url_encode(*label_id) + "/labels",
                                     json::object{{"set", set}}));
        return show(r, f);
      });
  label->add_option("node", *label_id, "node id or name")->required();
  label->add_option("labels", *labels, "k=v ...")->required();

  auto unlabel_id = std::make_shared<std::string>();
  auto keys = std::make_shared<std::vector<std::string>>();
  CLI::App* unlabel = add_verb(
      *noun, "unlabel", "Remove labels from a node", action, flags,
      [unlabel_id, keys](ApiClient& api, const ClientFlags& f) -> Result<void> {
        json::array remove;
        for (const auto& k : *keys)
          remove.emplace_back(k);
        LAB_TRY_ASSIGN(json::value r,
                       api.call_json("PATCH", "/v1/nodes/" + url_encode(*unlabel_id) + "/labels",
                                     json::object{{"remove", remove}}));
        return show(r, f);
      });
  unlabel->add_option("node", *unlabel_id, "node id or name")->required();
  unlabel->add_option("keys", *keys, "label keys")->required();

  auto revoke_id = std::make_shared<std::string>();
  add_verb(*noun, "revoke", "Revoke a node: its certificate is refused from now on", action, flags,
           [revoke_id](ApiClient& api, const ClientFlags& f) -> Result<void> {
             LAB_TRY(api.call("POST", "/v1/nodes/" + url_encode(*revoke_id) + "/revoke"));
             if (!f.json())
               fmt::print("node {} revoked\n", *revoke_id);
             return {};
           })
      ->add_option("node", *revoke_id, "node id or name")
      ->required();

  auto accept_id = std::make_shared<std::string>();
  add_verb(*noun, "accept", "Accept a discovered node", action, flags,
           [accept_id](ApiClient& api, const ClientFlags& f) -> Result<void> {
             LAB_TRY_ASSIGN(json::value r,
                            api.call("POST", "/v1/nodes/" + url_encode(*accept_id) + "/accept"));
             return show(r, f);
           })
      ->add_option("node", *accept_id, "node id or name")
      ->required();
}

}  // namespace lab::bootstrap::commands
