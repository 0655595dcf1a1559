// lab audit list|verify: the hash-chained audit trail.
#include "bootstrap/lab/commands.hpp"
#include "bootstrap/lab/output.hpp"
#include "shared/json/json.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

namespace lab::bootstrap::commands {
namespace {

namespace json = boost::json;

struct ListOptions {
  std::int64_t after = 0;
  std::int64_t limit = 100;
};

}  // namespace

void add_audit(CLI::App& app, shared::cli::Action& action) {
  auto flags = std::make_shared<ClientFlags>();
  CLI::App* noun = app.add_subcommand("audit", "The audit trail: list events, verify the chain");
  noun->require_subcommand(1);
  add_client_flags(*noun, flags);

  auto l = std::make_shared<ListOptions>();
  CLI::App* list = add_verb(
      *noun, "list", "List audit events", action, flags,
      [l](ApiClient& api, const ClientFlags& f) -> Result<void> {
        LAB_TRY_ASSIGN(json::value r,
                       api.call("GET", fmt::format("/v1/audit?after={}&limit={}", l->after,
                                                   l->limit)));
        if (f.json()) {
          print_json(r);
          return {};
        }
        Table t({"SEQ", "TIME", "ACTOR", "ACTION", "SUBJECT", "DETAIL"});
        if (r.is_array()) {
          for (const auto& e : r.get_array()) {
            const auto* d = e.is_object() ? e.as_object().if_contains("detail") : nullptr;
            t.add({text(e, "seq"), format_time(integer(e, "at")), text(e, "actor"),
                   text(e, "action"), text(e, "subject"),
                   d != nullptr && d->is_object() && !d->as_object().empty()
                       ? shared::json::to_string(*d)
                       : ""});
          }
        }
        t.print();
        return {};
      });
  list->add_option("--after", l->after, "only events after this sequence number")
      ->check(CLI::NonNegativeNumber);
  list->add_option("--limit", l->limit, "at most this many events (1–1000, default 100)")
      ->check(CLI::Range(1, 1000));

  add_verb(*noun, "verify", "Check the hash chain of the whole audit trail", action, flags,
           [](ApiClient& api, const ClientFlags& f) -> Result<void> {
             LAB_TRY_ASSIGN(json::value r, api.call("GET", "/v1/audit/verify"));
             const bool ok = r.is_object() && r.as_object().contains("ok") &&
                             r.at("ok").is_bool() && r.at("ok").as_bool();
             if (f.json())
               print_json(r);
             else if (ok)
               fmt::print("audit trail ok: {} events\n", text(r, "rows"));
             if (!ok) {
               return Error(LabError::bad_response,
                            "audit trail broken at event " + text(r, "first_bad_seq") + ": " +
                                text(r, "reason"));
             }
             return {};
           });
}

}  // namespace lab::bootstrap::commands
