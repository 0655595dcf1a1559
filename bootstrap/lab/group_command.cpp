// lab group set|list|members|delete: named selectors.
#include "bootstrap/lab/commands.hpp"
#include "bootstrap/lab/output.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

namespace lab::bootstrap::commands {
namespace {

namespace json = boost::json;

struct SetOptions {
  std::string name;
  std::string selector;
  std::vector<std::string> includes;
  std::vector<std::string> excludes;
};

json::array strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v)
    a.emplace_back(s);
  return a;
}

}  // namespace

void add_group(CLI::App& app, shared::cli::Action& action) {
  auto flags = std::make_shared<ClientFlags>();
  CLI::App* noun = app.add_subcommand("group",
                                      "Groups: named selectors that include/exclude "
                                      "other groups");
  noun->require_subcommand(1);
  add_client_flags(*noun, flags);

  auto s = std::make_shared<SetOptions>();
  CLI::App* set =
      add_verb(*noun, "set", "Create or replace a group", action, flags,
               [s](ApiClient& api, const ClientFlags& f) -> Result<void> {
                 json::object body{{"selector", s->selector},
                                   {"includes", strings(s->includes)},
                                   {"excludes", strings(s->excludes)}};
                 LAB_TRY_ASSIGN(json::value r,
                                api.call_json("PUT", "/v1/groups/" + url_encode(s->name), body));
                 if (f.document())
                   print_document(r);
                 else
                   fmt::print("group {} set\n", s->name);
                 return {};
               });
  set->add_option("name", s->name, "group name")
      ->check(name_arg(shared::names::Kind::group))
      ->required();
  set->add_option("-s,--selector", s->selector, "label selector of the members")
      ->check(selector_arg());
  set->add_option("--include", s->includes, "members of this group are members (repeatable)")
      ->check(name_arg(shared::names::Kind::group));
  set->add_option("--exclude", s->excludes, "members of this group are not (repeatable)")
      ->check(name_arg(shared::names::Kind::group));

  add_verb(*noun, "list", "List groups", action, flags,
           [](ApiClient& api, const ClientFlags& f) -> Result<void> {
             LAB_TRY_ASSIGN(json::value r, api.call("GET", "/v1/groups"));
             if (f.document()) {
               print_document(r);
               return {};
             }
             Table t({"NAME", "SELECTOR", "INCLUDES", "EXCLUDES"});
             if (r.is_array()) {
               for (const auto& g : r.get_array())
                 t.add({text(g, "name"), text(g, "selector"), list_text(g, "includes"),
                        list_text(g, "excludes")});
             }
             t.print();
             return {};
           });

  auto members = std::make_shared<std::string>();
  add_verb(
      *noun, "members", "List the nodes a group resolves to", action, flags,
      [members](ApiClient& api, const ClientFlags& f) -> Result<void> {
        LAB_TRY_ASSIGN(json::value r,
                       api.call("GET", "/v1/groups/" + url_encode(*members) + "/members"));
        if (f.document()) {
          print_document(r);
          return {};
        }
        Table t({"ID", "NAME", "STATE", "LABELS"});
        if (r.is_array()) {
          for (const auto& n : r.get_array())
            t.add({text(n, "id"), text(n, "name"), text(n, "state"), labels_text(n, "labels")});
        }
        t.print();
        return {};
      })
      ->add_option("name", *members, "group name")
      ->check(name_arg(shared::names::Kind::group))
      ->required();

  auto del = std::make_shared<std::string>();
  add_verb(*noun, "delete", "Delete a group", action, flags,
           [del](ApiClient& api, const ClientFlags& f) -> Result<void> {
             LAB_TRY(api.call("DELETE", "/v1/groups/" + url_encode(*del)));
             if (!f.document())
               fmt::print("group {} deleted\n", *del);
             return {};
           })
      ->add_option("name", *del, "group name")
      ->check(name_arg(shared::names::Kind::group))
      ->required();
}

}  // namespace lab::bootstrap::commands
