// lab node list|show|label|unlabel|revoke|delete|accept|reinstall|macs.
#include "bootstrap/lab/commands.hpp"
#include "bootstrap/lab/output.hpp"
#include "shared/labels/selector.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>

namespace lab::bootstrap::commands {
namespace {

namespace json = boost::json;

// How the node's agent last reported its keys are kept (facts["key_protection"]: "tpm",
// "tpm+pcr" or "file"); "unknown" until an agent reports it, which agents before that fact
// never do.
std::string key_text(const json::value& n) {
  std::string k = text(n, "key_protection");
  return k.empty() ? "unknown" : k;
}

// Revisions the agent's cache is behind its newest bundle ("0" when current, "-" before its
// first poll since the coordinator started).
std::string lag_text(const json::value& n) {
  const auto* o = n.if_object();
  const auto* v = o == nullptr ? nullptr : o->if_contains("revision_lag");
  return v != nullptr && v->is_int64() ? std::to_string(v->get_int64()) : std::string("-");
}

bool polling(const json::value& n) {
  const auto* o = n.if_object();
  const auto* v = o == nullptr ? nullptr : o->if_contains("polling");
  return v != nullptr && v->is_bool() && v->get_bool();
}

// "now" while its agent's poll is parked, else how long ago it was seen ("-": never).
std::string seen_text(const json::value& n) {
  if (polling(n))
    return "now";
  const std::int64_t at = integer(n, "last_seen");
  if (at <= 0)
    return "-";
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return shared::text::format_age(now - at) + " ago";
}

// One pillar's word ("passing"), from the node's "pillars" object.
std::string pillar(const json::value& n, std::string_view which) {
  const auto* o = n.if_object();
  const auto* p = o == nullptr ? nullptr : o->if_contains("pillars");
  return p != nullptr && p->is_object() ? text(*p, which) : std::string();
}

// The pillars as labels, for --where: the selector syntax over sync, config, health, identity.
shared::labels::LabelSet pillar_labels(const json::value& n) {
  shared::labels::LabelSet out;
  for (const char* which : {"sync", "config", "health", "identity"})
    out.emplace(which, pillar(n, which));
  return out;
}

// HEALTH with its counts: "failing (1/3)", "passing (3)".
std::string health_text(const json::value& n) {
  std::string state = pillar(n, "health");
  const auto* o = n.if_object();
  const auto* checks = o == nullptr ? nullptr : o->if_contains("checks");
  if (checks == nullptr || !checks->is_array() || checks->get_array().empty())
    return state;
  std::size_t failing = 0;
  for (const auto& c : checks->get_array())
    failing += static_cast<std::size_t>(text(c, "status") == "failing");
  const std::size_t all = checks->get_array().size();
  return failing > 0 ? fmt::format("{} ({}/{})", state, failing, all)
                     : fmt::format("{} ({})", state, all);
}

// -o wide adds the revision lag, groups, MACs, the agent's version, when its certificate
// expires and the state it last reported (an offline node's STATE is "offline").
void node_table(const json::value& nodes, bool wide) {
  std::vector<std::string> headers{"ID",     "NAME",     "STATE", "SYNC",   "CONFIG",
                                   "HEALTH", "IDENTITY", "KEY",   "LABELS", "LAST SEEN"};
  if (wide)
    headers.insert(headers.end(), {"LAG", "GROUPS", "REPORTED", "MACS", "AGENT", "CERT EXPIRES"});
  Table t(std::move(headers));
  if (nodes.is_array()) {
    for (const auto& n : nodes.get_array()) {
      std::vector<std::string> row{
          text(n, "id"),         text(n, "name"),     text(n, "state"),
          pillar(n, "sync"),     pillar(n, "config"), health_text(n),
          pillar(n, "identity"), key_text(n),         labels_text(n, "labels"),
          seen_text(n)};
      if (wide) {
        row.insert(row.end(), {lag_text(n), list_text(n, "groups"), text(n, "reported_state"),
                               list_text(n, "macs"), text(n, "agent_version"),
                               format_time(integer(n, "cert_expires_at"))});
      }
      t.add(std::move(row));
    }
  }
  t.print();
}

bool reinstall_armed(const json::value& n) {
  const auto* o = n.if_object();
  const auto* v = o == nullptr ? nullptr : o->if_contains("reinstall_armed");
  return v != nullptr && v->is_bool() && v->get_bool();
}

// "a, b or c".
std::string or_list(const json::value& n, std::string_view key) {
  std::vector<std::string> items;
  if (const auto* o = n.if_object(); o != nullptr) {
    if (const auto* v = o->if_contains(key); v != nullptr && v->is_array()) {
      for (const auto& item : v->get_array()) {
        if (item.is_string())
          items.emplace_back(item.get_string());
      }
    }
  }
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0)
      out += i + 1 == items.size() ? " or " : ", ";
    out += items[i];
  }
  return out;
}

void node_details(const json::value& n) {
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"id", text(n, "id")},
      {"name", text(n, "name")},
      {"state", text(n, "state") == "offline"
                    ? fmt::format("offline (last reported {})", text(n, "reported_state"))
                    : text(n, "state")},
      {"macs", list_text(n, "macs")},
      {"labels", labels_text(n, "labels")},
      {"groups", list_text(n, "groups")},
      {"agent", text(n, "agent_version")},
      {"created", format_time(integer(n, "created_at"))},
      {"last seen", fmt::format("{} ({})", format_time(integer(n, "last_seen")), seen_text(n))},
      {"revision", fmt::format("{} (agent holds {}, lag {})", integer(n, "revision"),
                               lag_text(n) == "-" ? std::string("?")
                                                  : std::to_string(integer(n, "agent_revision")),
                               lag_text(n))},
      {"certificate", text(n, "cert_serial")},
      {"cert expires", format_time(integer(n, "cert_expires_at"))},
      {"key protection", key_text(n)},
      {"reinstall armed", reinstall_armed(n) ? "yes: the next network boot re-enrols it" : "no"},
  };
  for (const auto& [k, v] : rows)
    fmt::print("{:<16} {}\n", k + ":", v.empty() ? "-" : v);
  fmt::print("{:<16} sync {}, config {}, health {}, identity {}\n", "pillars:", pillar(n, "sync"),
             pillar(n, "config"), pillar(n, "health"), pillar(n, "identity"));
  const auto& o = n.as_object();
  if (const auto* run = o.if_contains("config_run");
      run && run->is_object() && !run->get_object().empty()) {
    fmt::print("{:<16} {} ({} failures, {} changes, {} resources, agent {})\n",
               "config run:", format_time(integer(*run, "last_run")), integer(*run, "failures"),
               integer(*run, "changes"), integer(*run, "resources"), text(*run, "agent_version"));
  }
  if (const auto* checks = o.if_contains("checks"); checks && checks->is_array()) {
    for (const auto& c : checks->get_array()) {
      fmt::print("{:<16} {} {} since {}: {}\n", "check:", text(c, "name"), text(c, "status"),
                 format_time(integer(c, "since")), text(c, "reason"));
    }
  }
}

// Prints a node answer (label/accept) the way the operator asked.
Result<void> show(const json::value& n, const ClientFlags& f) {
  if (f.document())
    print_document(n);
  else
    node_details(n);
  return {};
}

}  // namespace

void add_node(CLI::App& app, shared::cli::Action& action) {
  auto flags = std::make_shared<ClientFlags>();
  CLI::App* noun = app.add_subcommand(
      "node", "Nodes: list, show, label, revoke, delete, accept, reinstall, macs");
  noun->require_subcommand(1);
  add_client_flags(*noun, flags);

  auto selector = std::make_shared<std::string>();
  auto where = std::make_shared<std::string>();
  CLI::App* list =
      add_verb(*noun, "list", "List nodes, optionally those a selector matches", action, flags,
               [selector, where](ApiClient& api, const ClientFlags& f) -> Result<void> {
                 const auto pillars = shared::labels::Selector::parse(*where);  // checked by CLI11
                 std::string path = "/v1/nodes";
                 if (!selector->empty())
                   path += "?selector=" + url_encode(*selector);
                 LAB_TRY_ASSIGN(json::value r, api.call("GET", path));
                 if (!where->empty() && r.is_array()) {
                   json::array kept;
                   for (auto& n : r.get_array()) {
                     if (pillars && pillars->matches(pillar_labels(n)))
                       kept.push_back(std::move(n));
                   }
                   r = std::move(kept);
                 }
                 if (f.document())
                   print_document(r);
                 else
                   node_table(r, f.wide());
                 return {};
               });
  list->add_option("-s,--selector", *selector, "label selector: role=web,env in (prod),!gpu")
      ->check(selector_arg());
  list->add_option("--where", *where,
                   "the same syntax over the pillars sync, config, health, identity: "
                   "health=failing, sync!=current")
      ->check(selector_arg())
      ->check(CLI::Validator(
          [](std::string& value) {
            // A key that is no pillar would quietly match nothing.
            auto parsed = shared::labels::Selector::parse(value);
            for (const auto& term :
                 parsed ? parsed->requirements() : std::vector<shared::labels::Requirement>{}) {
              if (term.key != "sync" && term.key != "config" && term.key != "health" &&
                  term.key != "identity")
                return fmt::format("'{}' is not a pillar (sync, config, health, identity)",
                                   term.key);
            }
            return std::string();
          },
          ""));

  auto id = std::make_shared<std::string>();
  add_verb(*noun, "show", "Show one node (by id or name)", action, flags,
           [id](ApiClient& api, const ClientFlags& f) -> Result<void> {
             LAB_TRY_ASSIGN(json::value r, api.call("GET", "/v1/nodes/" + url_encode(*id)));
             return show(r, f);
           })
      ->add_option("node", *id, "node id or name")
      ->check(name_arg(shared::names::Kind::node))
      ->required();

  auto label_id = std::make_shared<std::string>();
  auto labels = std::make_shared<std::vector<std::string>>();
  auto overwrite = std::make_shared<bool>(false);
  CLI::App* label = add_verb(
      *noun, "label", "Set labels on a node", action, flags,
      [label_id, labels, overwrite](ApiClient& api, const ClientFlags& f) -> Result<void> {
        LAB_TRY_ASSIGN(json::object set, parse_labels_arg(*labels));
        auto r = api.call_json("PATCH", "/v1/nodes/" + url_encode(*label_id) + "/labels",
                               json::object{{"set", set}, {"overwrite", *overwrite}});
        if (!r && r.error() == LabError::conflict)
          return Error(LabError::conflict, r.error().detail() + ": pass --overwrite to change it");
        if (!r)
          return r.error();
        return show(*r, f);
      });
  label->add_flag("--overwrite", *overwrite, "change the value of a key the node already has");
  label->add_option("node", *label_id, "node id or name")
      ->check(name_arg(shared::names::Kind::node))
      ->required();
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
  unlabel->add_option("node", *unlabel_id, "node id or name")
      ->check(name_arg(shared::names::Kind::node))
      ->required();
  unlabel->add_option("keys", *keys, "label keys")->required();

  auto revoke_id = std::make_shared<std::string>();
  add_verb(*noun, "revoke", "Revoke a node: its certificate is refused from now on", action, flags,
           [revoke_id](ApiClient& api, const ClientFlags& f) -> Result<void> {
             LAB_TRY(api.call("POST", "/v1/nodes/" + url_encode(*revoke_id) + "/revoke"));
             if (!f.document())
               fmt::print("node {} revoked\n", *revoke_id);
             return {};
           })
      ->add_option("node", *revoke_id, "node id or name")
      ->check(name_arg(shared::names::Kind::node))
      ->required();

  auto delete_id = std::make_shared<std::string>();
  CLI::App* del =
      add_verb(*noun, "delete", "Forget a revoked node, freeing its name and MACs", action, flags,
               [delete_id](ApiClient& api, const ClientFlags& f) -> Result<void> {
                 LAB_TRY(api.call("DELETE", "/v1/nodes/" + url_encode(*delete_id)));
                 if (!f.document())
                   fmt::print("node {} deleted\n", *delete_id);
                 return {};
               });
  del->add_option("node", *delete_id, "node id or name")
      ->check(name_arg(shared::names::Kind::node))
      ->required();
  del->footer(
      "Only a revoked node can be deleted ('lab node revoke NODE' first). Its certificates stay on "
      "record as revoked, so nothing it held is accepted again; its name can be given to a new "
      "node, and a machine rejoining with a token takes it.");

  auto accept_id = std::make_shared<std::string>();
  add_verb(*noun, "accept", "Accept a discovered node", action, flags,
           [accept_id](ApiClient& api, const ClientFlags& f) -> Result<void> {
             LAB_TRY_ASSIGN(json::value r,
                            api.call("POST", "/v1/nodes/" + url_encode(*accept_id) + "/accept"));
             return show(r, f);
           })
      ->add_option("node", *accept_id, "node id or name")
      ->check(name_arg(shared::names::Kind::node))
      ->required();

  auto reinstall_id = std::make_shared<std::string>();
  CLI::App* reinstall = add_verb(
      *noun, "reinstall", "Let the node's next network boot enrol it again, with new keys", action,
      flags, [reinstall_id](ApiClient& api, const ClientFlags& f) -> Result<void> {
        LAB_TRY_ASSIGN(json::value r,
                       api.call("POST", "/v1/nodes/" + url_encode(*reinstall_id) + "/reinstall"));
        if (f.document()) {
          print_document(r);
          return {};
        }
        const std::string name = text(r, "name");
        fmt::print(
            "node {0}: reinstall armed\n"
            "next: the next network boot from {1} enrols node {0} again, with new keys (same id, "
            "name and labels); its current certificates are revoked then, and the reinstall is "
            "disarmed.\n"
            "That boot gets a boot token only if this appliance's DHCP leased the MAC an address "
            "or an operator registered it: lab machine register MAC --ip IP.\n",
            name, or_list(r, "macs"));
        return {};
      });
  reinstall->add_option("node", *reinstall_id, "node id or name")
      ->check(name_arg(shared::names::Kind::node))
      ->required();
  reinstall->footer(
      "A join makes a new node unless it proves to be an existing one. This arms one "
      "exception: the next boot token minted for one of the node's MACs enrols this node again "
      "with new keys (its old certificates are revoked), then it is disarmed. The node needs a "
      "MAC: see 'lab node macs'.");

  auto macs_id = std::make_shared<std::string>();
  auto add = std::make_shared<std::vector<std::string>>();
  auto remove = std::make_shared<std::vector<std::string>>();
  CLI::App* macs = add_verb(
      *noun, "macs", "Show a node's MACs, or give it MACs and take them away", action, flags,
      [macs_id, add, remove](ApiClient& api, const ClientFlags& f) -> Result<void> {
        const std::string path = "/v1/nodes/" + url_encode(*macs_id);
        json::value r;
        if (add->empty() && remove->empty()) {
          LAB_TRY_ASSIGN(r, api.call("GET", path));
        } else {
          json::array a;
          json::array d;
          for (const auto& m : *add) {
            LAB_TRY_ASSIGN(std::string mac, parse_mac_arg(m, "--add"));
            a.emplace_back(mac);
          }
          for (const auto& m : *remove) {
            LAB_TRY_ASSIGN(std::string mac, parse_mac_arg(m, "--remove"));
            d.emplace_back(mac);
          }
          LAB_TRY_ASSIGN(
              r, api.call_json("PATCH", path + "/macs", json::object{{"add", a}, {"remove", d}}));
        }
        if (f.document()) {
          print_document(r);
          return {};
        }
        const std::string listed = list_text(r, "macs");
        if (listed.empty()) {
          fmt::print(stderr, "node {} has no MAC; give it one with 'lab node macs {} --add MAC'\n",
                     text(r, "name"), text(r, "name"));
          return {};
        }
        Table t({"MAC"});
        for (const auto& m : r.at("macs").as_array())
          t.add({m.is_string() ? std::string(m.get_string()) : std::string()});
        t.print();
        return {};
      });
  macs->add_option("node", *macs_id, "node id or name")
      ->check(name_arg(shared::names::Kind::node))
      ->required();
  macs->add_option("--add", *add, "give the node this MAC (repeatable)");
  macs->add_option("--remove", *remove, "take this MAC from the node (repeatable)");
  macs->footer(
      "A MAC belongs to a node through this appliance's DHCP or an operator, never through what "
      "the node reports: boot tokens minted for it, and 'lab node reinstall', follow it. A MAC "
      "another node holds is refused; remove it there first.");
}

}  // namespace lab::bootstrap::commands
