#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lab::pxe::events {

/// One step of a machine's network boot, for the boot flight recorder
/// (`lab machine timeline MAC`).
enum class Kind {
  dhcp_discover,
  dhcp_offer,
  dhcp_request,
  dhcp_ack,
  dhcp_nak,
  dhcp_decline,
  dhcp_release,
  dhcp_inform,
  proxy_offer,  // proxy mode: boot information without an address
  proxy_ack,    // proxy mode, port 4011
  tftp_start,
  tftp_done,
  tftp_error,
  script_render,   // per-machine iPXE script served
  script_refused,  // script request from an IP that does not match the boot token binding
  http_fetch,      // kernel, initrd or other boot file over HTTP
  agent_boot,      // progress reported by `labd boot`
  agent_join,
};

std::string_view kind_name(Kind kind) noexcept;
/// The Kind kind_name() gives this name; nullopt for any other text.
std::optional<Kind> kind_from_name(std::string_view name) noexcept;

/// What happened, to whom and when. DHCP knows the MAC; TFTP and HTTP know only the client
/// IP, and the recorder maps it to a MAC through the DHCP exchanges it has seen.
struct Event {
  std::chrono::system_clock::time_point at;
  Kind kind = Kind::dhcp_discover;
  std::string mac;  // "52:54:00:12:34:56" (lower case), empty when unknown
  std::string ip;   // client address when known
  std::vector<std::pair<std::string, std::string>> detail;  // arch=x86-64-uefi, file=ipxe.efi…
};

/// Where servers report events. Implementations must be thread-safe and must not block: they
/// are called on the io_context (a server's strand) in the middle of handling a packet.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void record(Event event) = 0;
};

/// A sink that drops everything (servers run without a recorder in unit tests).
class NullSink final : public Sink {
 public:
  void record(Event /*event*/) override {}
};

}  // namespace lab::pxe::events
