// lab machine timeline MAC: every boot step the PXE servers recorded for one machine.
#include "bootstrap/lab/commands.hpp"
#include "bootstrap/lab/output.hpp"
#include "shared/json/json.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

namespace lab::bootstrap::commands {
namespace {

namespace json = boost::json;

// "k=v k2=v2" from an event's detail object.
std::string detail_text(const json::value& event) {
  std::string out;
  const auto* o = event.if_object();
  const auto* d = o == nullptr ? nullptr : o->if_contains("detail");
  if (d == nullptr || !d->is_object())
    return out;
  for (const auto& [k, v] : d->get_object()) {
    if (!out.empty())
      out += ' ';
    out += std::string(k) + "=" +
           (v.is_string() ? std::string(v.get_string()) : shared::json::to_string(v));
  }
  return out;
}

}  // namespace

void add_machine(CLI::App& app, shared::cli::Action& action) {
  auto flags = std::make_shared<ClientFlags>();
  CLI::App* noun =
      app.add_subcommand("machine", "Machines seen by the PXE servers: boot timelines");
  noun->require_subcommand(1);
  add_client_flags(*noun, flags);

  auto mac = std::make_shared<std::string>();
  add_verb(*noun, "timeline", "Show the boot flight recorder's timeline of one machine", action,
           flags,
           [mac](ApiClient& api, const ClientFlags& f) -> Result<void> {
             LAB_TRY_ASSIGN(json::value r,
                            api.call("GET", "/v1/machines/" + url_encode(*mac) + "/timeline"));
             if (f.json()) {
               print_json(r);
               return {};
             }
             const auto* o = r.if_object();
             const auto* events = o == nullptr ? nullptr : o->if_contains("events");
             Table t({"TIME", "EVENT", "IP", "DETAIL"});
             if (events != nullptr && events->is_array()) {
               for (const auto& e : events->get_array())
                 t.add({text(e, "at"), text(e, "kind"), text(e, "ip"), detail_text(e)});
             }
             t.print();
             return {};
           })
      ->add_option("mac", *mac, "MAC address: 52:54:00:12:34:56")
      ->required();
}

}  // namespace lab::bootstrap::commands
