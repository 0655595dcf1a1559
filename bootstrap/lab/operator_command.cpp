// lab operator add|list|revoke: named operator credentials, each with its own expiry and
// revocation, so the audit trail says which person did what.
#include "bootstrap/lab/commands.hpp"
#include "bootstrap/lab/output.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>

namespace lab::bootstrap::commands {
namespace {

namespace json = boost::json;

struct AddOptions {
  std::string name;
  std::string ttl;  // empty: the credential does not expire
};

std::string expires_text(const json::value& op) {
  const std::int64_t at = integer(op, "expires_at");
  return at == 0 ? "never" : format_time(at);
}

}  // namespace

void add_operator(CLI::App& app, shared::cli::Action& action) {
  auto flags = std::make_shared<ClientFlags>();
  CLI::App* noun =
      app.add_subcommand("operator", "Operator credentials: add, list, revoke (one per person)");
  noun->require_subcommand(1);
  add_client_flags(*noun, flags);

  auto a = std::make_shared<AddOptions>();
  CLI::App* add = add_verb(
      *noun, "add", "Make a credential for an operator and print it (shown once)", action, flags,
      [a](ApiClient& api, const ClientFlags& f) -> Result<void> {
        if (!a->ttl.empty()) {
          LAB_TRY(check_duration_arg(a->ttl, "--ttl"));
        }
        json::object body{{"name", a->name}};
        if (!a->ttl.empty())
          body["ttl"] = a->ttl;
        LAB_TRY_ASSIGN(json::value r, api.call_json("POST", "/v1/operators", body));
        if (f.document()) {
          print_document(r);
          return {};
        }
        // The token alone on stdout, so `TOKEN=$(lab operator add alice)` captures it.
        fmt::print("{}\n", text(r, "token"));
        fmt::print(stderr,
                   "operator {} added (expires: {}); the credential is shown only once, the "
                   "operator passes it with LAB_TOKEN or --token-file\n",
                   text(r, "name"), expires_text(r));
        return {};
      });
  add->add_option("name", a->name, "the operator's name, as the audit trail will show it")
      ->check(name_arg(shared::names::Kind::operator_name))
      ->required();
  add->add_option("--ttl", a->ttl, "lifetime: 12h, 30d, 365d (default: does not expire)");
  add->footer(
      "The coordinator stores only the credential's SHA-256: a lost one cannot be shown again. "
      "Revoke it and add the name again: the new credential replaces the revoked one.");

  add_verb(*noun, "list", "List operator credentials and their state", action, flags,
           [](ApiClient& api, const ClientFlags& f) -> Result<void> {
             LAB_TRY_ASSIGN(json::value r, api.call("GET", "/v1/operators"));
             if (f.document()) {
               print_document(r);
               return {};
             }
             Table t({"NAME", "STATE", "CREATED", "EXPIRES", "CREATED BY"});
             if (r.is_array()) {
               for (const auto& op : r.get_array()) {
                 t.add({text(op, "name"), text(op, "state"), format_time(integer(op, "created_at")),
                        expires_text(op), text(op, "created_by")});
               }
             }
             t.print();
             return {};
           });

  auto revoke_name = std::make_shared<std::string>();
  add_verb(*noun, "revoke", "Revoke an operator's credential: refused from now on", action, flags,
           [revoke_name](ApiClient& api, const ClientFlags& f) -> Result<void> {
             LAB_TRY(api.call("DELETE", "/v1/operators/" + url_encode(*revoke_name)));
             if (!f.document())
               fmt::print("operator {} revoked\n", *revoke_name);
             return {};
           })
      ->add_option("name", *revoke_name, "operator name")
      ->check(name_arg(shared::names::Kind::operator_name))
      ->required();
}

}  // namespace lab::bootstrap::commands
