// lab machine register|list|unregister: machines whose network boot this appliance's DHCP does
// not see; lab machine timeline MAC: every boot step the PXE servers recorded for one machine.
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

struct RegisterOptions {
  std::string mac;
  std::string ip;
  std::string description;
};

void machine_table(const json::value& machines) {
  Table t({"MAC", "IP", "NODE", "REGISTERED", "DESCRIPTION"});
  if (machines.is_array()) {
    for (const auto& m : machines.get_array()) {
      t.add({text(m, "mac"), text(m, "ip"), text(m, "node_id"),
             format_time(integer(m, "registered_at")), text(m, "description")});
    }
  }
  t.print();
}

}  // namespace

void add_machine(CLI::App& app, shared::cli::Action& action) {
  auto flags = std::make_shared<ClientFlags>();
  CLI::App* noun = app.add_subcommand(
      "machine", "Machines that boot from the network: registration and boot timelines");
  noun->require_subcommand(1);
  add_client_flags(*noun, flags);

  auto reg = std::make_shared<RegisterOptions>();
  CLI::App* register_cmd = add_verb(
      *noun, "register", "Let a machine another DHCP serves boot from this appliance", action,
      flags, [reg](ApiClient& api, const ClientFlags& f) -> Result<void> {
        LAB_TRY_ASSIGN(std::string mac, parse_mac_arg(reg->mac));
        LAB_TRY(check_ip_arg(reg->ip, "--ip"));
        LAB_TRY_ASSIGN(
            json::value r,
            api.call_json("PUT", "/v1/machines/" + url_encode(mac),
                          json::object{{"ip", reg->ip}, {"description", reg->description}}));
        if (f.document()) {
          print_document(r);
          return {};
        }
        fmt::print("machine {} registered: its boot tokens are bound to {}\n", text(r, "mac"),
                   text(r, "ip"));
        return {};
      });
  register_cmd->add_option("mac", reg->mac, "MAC address: 52:54:00:12:34:56")->required();
  register_cmd->add_option("--ip", reg->ip, "the address the machine boots from")->required();
  register_cmd->add_option("--description", reg->description,
                           "free text shown by 'lab machine list'");
  register_cmd->footer(
      "A network boot gets a boot token (and so can join) only for a MAC this appliance's DHCP "
      "leased an address to, bound to that address, so knowing a MAC is not enough. A machine "
      "this appliance's DHCP does not serve (another DHCP server, a static address) gets one "
      "only if registered here, bound to the address given with --ip. Registering again "
      "changes the address and the description.");

  add_verb(*noun, "list", "List the machines registered for network boot", action, flags,
           [](ApiClient& api, const ClientFlags& f) -> Result<void> {
             LAB_TRY_ASSIGN(json::value r, api.call("GET", "/v1/machines"));
             if (f.document())
               print_document(r);
             else
               machine_table(r);
             return {};
           });

  auto unregister_mac = std::make_shared<std::string>();
  add_verb(*noun, "unregister",
           "Stop minting boot tokens for a registered machine (its live ones are revoked)", action,
           flags,
           [unregister_mac](ApiClient& api, const ClientFlags& f) -> Result<void> {
             LAB_TRY_ASSIGN(std::string mac, parse_mac_arg(*unregister_mac));
             LAB_TRY(api.call("DELETE", "/v1/machines/" + url_encode(mac)));
             if (!f.document())
               fmt::print("machine {} unregistered\n", mac);
             return {};
           })
      ->add_option("mac", *unregister_mac, "MAC address: 52:54:00:12:34:56")
      ->required();

  auto mac = std::make_shared<std::string>();
  add_verb(*noun, "timeline", "Show the boot flight recorder's timeline of one machine", action,
           flags,
           [mac](ApiClient& api, const ClientFlags& f) -> Result<void> {
             LAB_TRY_ASSIGN(json::value r,
                            api.call("GET", "/v1/machines/" + url_encode(*mac) + "/timeline"));
             if (f.document()) {
               print_document(r);
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
