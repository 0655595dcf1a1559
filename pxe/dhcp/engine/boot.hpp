#pragma once

#include "pxe/dhcp/wire/message.hpp"

#include <optional>
#include <string>

namespace lab::pxe::dhcp::engine {

/// What the boot firmware of a client is, from option 93, vendor class (60) and user class (77).
enum class ClientKind {
  none,             // not a network-boot client (an ordinary DHCP client)
  bios,             // PXE on legacy BIOS (arch 0)
  uefi_x64,         // x86-64 UEFI PXE (arch 7 or 9)
  uefi_ia32,        // 32-bit x86 UEFI (arch 6)
  uefi_arm64,       // ARM64 UEFI PXE (arch 11)
  uefi_http_x64,    // UEFI HTTP boot, x86-64 (arch 16)
  uefi_http_arm64,  // UEFI HTTP boot, ARM64 (arch 19)
  ipxe,             // iPXE already running (user class "iPXE"): gets the HTTP script
  unsupported,      // a PXE client of an architecture we have no file for
};
std::string_view client_kind_name(ClientKind k) noexcept;

/// The boot files per architecture (dhcp.* configuration).
struct BootConfig {
  std::string bios_file = "undionly.kpxe";
  std::string uefi_x64_file = "ipxe.efi";  // snponly.efi is the alternative for UNDI-less NICs
  std::string uefi_arm64_file;             // Debian's ipxe package ships no ARM64 build
  /// The iPXE script URL; breaks the chainload loop. http://<server-ip>:8080/boot/boot.ipxe
  std::string boot_url;
};

/// The answer for a boot client.
struct BootDecision {
  ClientKind kind = ClientKind::none;
  std::string arch;          // "bios", "uefi-x64", … for events
  std::string file;          // TFTP file name or http URL; empty when there is nothing to boot
  std::string vendor_class;  // echoed in option 60: "PXEClient" or "HTTPClient"
  bool pxe = false;          // the client is a PXE client (vendor class PXEClient…)
};

/// The client's firmware and what to send it. Pure function of the packet and the config.
BootDecision decide_boot(const wire::Message& m, const BootConfig& config);

/// The URL prefix of boot_url up to and including its last '/': where UEFI HTTP clients fetch
/// iPXE binaries ("http://10.0.0.1:8080/boot/").
std::string http_base(const std::string& boot_url);

}  // namespace lab::pxe::dhcp::engine
