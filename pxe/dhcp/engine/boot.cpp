#include "pxe/dhcp/engine/boot.hpp"

#include <algorithm>

namespace lab::pxe::dhcp::engine {

std::string_view client_kind_name(ClientKind k) noexcept {
  switch (k) {
    case ClientKind::none:
      return "none";
    case ClientKind::bios:
      return "bios";
    case ClientKind::uefi_x64:
      return "uefi-x64";
    case ClientKind::uefi_ia32:
      return "uefi-ia32";
    case ClientKind::uefi_arm64:
      return "uefi-arm64";
    case ClientKind::uefi_http_x64:
      return "uefi-http-x64";
    case ClientKind::uefi_http_arm64:
      return "uefi-http-arm64";
    case ClientKind::ipxe:
      return "ipxe";
    case ClientKind::unsupported:
      return "unsupported";
  }
  return "unknown";
}

std::string http_base(const std::string& boot_url) {
  const auto slash = boot_url.rfind('/');
  if (slash == std::string::npos)
    return boot_url + "/";
  return boot_url.substr(0, slash + 1);
}

BootDecision decide_boot(const wire::Message& m, const BootConfig& config) {
  BootDecision d;
  const std::string vc = wire::vendor_class(m);
  const bool pxe = vc.starts_with("PXEClient");
  const bool http = vc.starts_with("HTTPClient");
  d.pxe = pxe;
  const auto users = wire::user_classes(m);
  const bool ipxe = std::find(users.begin(), users.end(), "iPXE") != users.end();

  // Architecture from option 93; a malformed option counts as absent and falls back to the
  // "Arch:NNNNN" field of the vendor class, which every PXE ROM sends as well.
  std::optional<std::uint16_t> arch;
  if (auto a = wire::client_arch(m); a && !a->empty())
    arch = a->front();
  if (!arch) {
    if (auto pos = vc.find(":Arch:"); pos != std::string::npos && pos + 11 <= vc.size()) {
      std::uint16_t v = 0;
      bool ok = true;
      for (std::size_t i = pos + 6; i < pos + 11; ++i) {
        if (vc[i] < '0' || vc[i] > '9') {
          ok = false;
          break;
        }
        v = static_cast<std::uint16_t>(v * 10 + (vc[i] - '0'));
      }
      if (ok)
        arch = v;
    }
  }

  if (ipxe) {
    d.kind = ClientKind::ipxe;
    d.file = config.boot_url;
    d.vendor_class = pxe ? "PXEClient" : (http ? "HTTPClient" : "");
  } else if (http) {
    d.vendor_class = "HTTPClient";
    if (arch == 19) {
      d.kind = ClientKind::uefi_http_arm64;
      if (!config.uefi_arm64_file.empty())
        d.file = http_base(config.boot_url) + config.uefi_arm64_file;
    } else {
      d.kind = ClientKind::uefi_http_x64;
      d.file = http_base(config.boot_url) + config.uefi_x64_file;
    }
  } else if (pxe || arch) {
    d.vendor_class = "PXEClient";
    switch (arch.value_or(0)) {
      case 0:
        d.kind = ClientKind::bios;
        d.file = config.bios_file;
        break;
      case 7:
      case 9:
        d.kind = ClientKind::uefi_x64;
        d.file = config.uefi_x64_file;
        break;
      case 6:
        d.kind = ClientKind::uefi_ia32;
        break;
      case 11:
        d.kind = ClientKind::uefi_arm64;
        d.file = config.uefi_arm64_file;
        break;
      case 16:
        d.kind = ClientKind::uefi_http_x64;
        d.file = http_base(config.boot_url) + config.uefi_x64_file;
        d.vendor_class = "HTTPClient";
        break;
      case 19:
        d.kind = ClientKind::uefi_http_arm64;
        if (!config.uefi_arm64_file.empty())
          d.file = http_base(config.boot_url) + config.uefi_arm64_file;
        d.vendor_class = "HTTPClient";
        break;
      default:
        d.kind = ClientKind::unsupported;
        break;
    }
    if (!pxe && d.kind != ClientKind::uefi_http_x64 && d.kind != ClientKind::uefi_http_arm64) {
      // Option 93 without a PXE vendor class: not a firmware boot client.
      return BootDecision{};
    }
  }
  d.arch = std::string(client_kind_name(d.kind));
  return d;
}

}  // namespace lab::pxe::dhcp::engine
