// lab token create|list|revoke: one-time join tokens.
#include "bootstrap/lab/commands.hpp"
#include "bootstrap/lab/output.hpp"
#include "shared/labels/label.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

namespace lab::bootstrap::commands {
namespace {

namespace json = boost::json;

struct CreateOptions {
  std::vector<std::string> labels;
  std::string ttl = "1h";
  std::string mac, ip, host, description;
  std::vector<std::string> binds;  // "mac=…", "ip=…", "host=…"
};

// --bind mac=52:54:00:12:34:56 | ip=10.0.0.5 | host=web1 (the same as --bind-mac and friends).
Result<void> apply_binds(CreateOptions& c) {
  for (const auto& b : c.binds) {
    const auto eq = b.find('=');
    const std::string key = b.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : b.substr(eq + 1);
    std::string* slot = key == "mac"    ? &c.mac
                        : key == "ip"   ? &c.ip
                        : key == "host" ? &c.host
                                        : nullptr;
    if (slot == nullptr || value.empty())
      return Error(LabError::usage, "--bind '" + b + "': expected mac=…, ip=… or host=…");
    *slot = value;
  }
  return {};
}

Result<json::object> labels_object(const std::vector<std::string>& items) {
  json::object o;
  for (const auto& item : items) {
    auto set = shared::labels::parse_list(item);
    if (!set)
      return Error(LabError::usage, "label '" + item + "': " + set.error().detail());
    for (const auto& [k, v] : *set)
      o[k] = v;
  }
  return o;
}

}  // namespace

Result<json::object> parse_labels_arg(const std::vector<std::string>& items) {
  return labels_object(items);
}

void add_token(CLI::App& app, shared::cli::Action& action) {
  auto flags = std::make_shared<ClientFlags>();
  CLI::App* noun = app.add_subcommand("token", "Join tokens: create, list, revoke");
  noun->require_subcommand(1);
  add_client_flags(*noun, flags);

  auto c = std::make_shared<CreateOptions>();
  CLI::App* create = add_verb(
      *noun, "create", "Create a one-time join token and print its join string", action, flags,
      [c](ApiClient& api, const ClientFlags& f) -> Result<void> {
        LAB_TRY(check_duration_arg(c->ttl, "--ttl"));
        LAB_TRY(apply_binds(*c));
        if (!c->mac.empty()) {
          LAB_TRY_ASSIGN(c->mac, parse_mac_arg(c->mac, "--bind-mac"));
        }
        if (!c->ip.empty()) {
          LAB_TRY(check_ip_arg(c->ip, "--bind-ip"));
        }
        LAB_TRY_ASSIGN(json::object labels, labels_object(c->labels));
        json::object body{{"labels", labels}, {"ttl", c->ttl}, {"description", c->description}};
        if (!c->mac.empty() || !c->ip.empty() || !c->host.empty())
          body["bind"] = json::object{{"mac", c->mac}, {"ip", c->ip}, {"host", c->host}};
        LAB_TRY_ASSIGN(json::value r, api.call_json("POST", "/v1/tokens", body));
        if (f.document()) {
          print_document(r);
          return {};
        }
        const json::value info =
            r.is_object() && r.as_object().contains("info") ? r.at("info") : json::value();
        fmt::print("{}\n", text(r, "join_string"));
        fmt::print(stderr, "token {} expires {}; it is shown only once\n", text(info, "id"),
                   format_time(integer(info, "expires_at")));
        return {};
      });
  create->add_option("-l,--label,--labels", c->labels,
                     "labels applied on join: k=v[,k2=v2] (repeatable)");
  create->add_option("--ttl", c->ttl, "lifetime: 90s, 15m, 1h, 7d (default 1h)");
  create->add_option("--bind", c->binds, "bind to mac=…, ip=… or host=… (repeatable)");
  create->add_option("--bind-mac", c->mac, "only a node with this MAC may use it");
  create->add_option("--bind-ip", c->ip, "only a node joining from this IP may use it");
  create->add_option("--bind-host", c->host, "only a node with this hostname may use it");
  create->add_option("--description", c->description, "free text shown by 'lab token list'");

  add_verb(*noun, "list", "List tokens and their state", action, flags,
           [](ApiClient& api, const ClientFlags& f) -> Result<void> {
             LAB_TRY_ASSIGN(json::value r, api.call("GET", "/v1/tokens"));
             if (f.document()) {
               print_document(r);
               return {};
             }
             Table t({"ID", "KIND", "STATE", "EXPIRES", "LABELS", "USED BY", "DESCRIPTION"});
             if (r.is_array()) {
               for (const auto& tok : r.get_array()) {
                 t.add({text(tok, "id"), text(tok, "kind"), text(tok, "state"),
                        format_time(integer(tok, "expires_at")), labels_text(tok, "labels"),
                        text(tok, "used_by"), text(tok, "description")});
               }
             }
             t.print();
             return {};
           });

  auto id = std::make_shared<std::string>();
  add_verb(*noun, "revoke", "Revoke a token so it can no longer be used", action, flags,
           [id](ApiClient& api, const ClientFlags& f) -> Result<void> {
             LAB_TRY(api.call("DELETE", "/v1/tokens/" + url_encode(*id)));
             if (!f.document())
               fmt::print("token {} revoked\n", *id);
             return {};
           })
      ->add_option("id", *id, "token id")
      ->required();
}

}  // namespace lab::bootstrap::commands
