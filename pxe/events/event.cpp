#include "pxe/events/event.hpp"

namespace lab::pxe::events {

std::string_view kind_name(Kind kind) noexcept {
  switch (kind) {
    case Kind::dhcp_discover:
      return "dhcp-discover";
    case Kind::dhcp_offer:
      return "dhcp-offer";
    case Kind::dhcp_request:
      return "dhcp-request";
    case Kind::dhcp_ack:
      return "dhcp-ack";
    case Kind::dhcp_nak:
      return "dhcp-nak";
    case Kind::dhcp_decline:
      return "dhcp-decline";
    case Kind::dhcp_release:
      return "dhcp-release";
    case Kind::dhcp_inform:
      return "dhcp-inform";
    case Kind::proxy_offer:
      return "proxy-offer";
    case Kind::proxy_ack:
      return "proxy-ack";
    case Kind::tftp_start:
      return "tftp-start";
    case Kind::tftp_done:
      return "tftp-done";
    case Kind::tftp_error:
      return "tftp-error";
    case Kind::script_render:
      return "script-render";
    case Kind::script_refused:
      return "script-refused";
    case Kind::http_fetch:
      return "http-fetch";
    case Kind::agent_boot:
      return "agent-boot";
    case Kind::agent_join:
      return "agent-join";
  }
  return "unknown";
}

std::optional<Kind> kind_from_name(std::string_view name) noexcept {
  for (int k = static_cast<int>(Kind::dhcp_discover); k <= static_cast<int>(Kind::agent_join);
       ++k) {
    if (kind_name(static_cast<Kind>(k)) == name)
      return static_cast<Kind>(k);
  }
  return std::nullopt;
}

}  // namespace lab::pxe::events
