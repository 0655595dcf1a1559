#pragma once

#include "shared/errors/error.hpp"
#include "shared/labels/label.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace lab::pxe::registry {

/// What the boot servers need to know about a machine the coordinator has seen.
struct Machine {
  std::string node_id;
  std::string name;
  std::string state;  // "discovered", "enrolled", "provisioning", "ready", "revoked"
  shared::labels::LabelSet labels;
};

/// A one-time boot token, minted per boot and put on the kernel command line.
struct BootToken {
  std::string token;  // shared::protocol::Token::to_string()
  std::string join_string;
  std::chrono::system_clock::time_point expires_at;
};

/// What this appliance's DHCP server has leased: the security of boot tokens rests on it, so it
/// mirrors durable state (the lease journal), never a bounded cache. Thread-safe.
class Leases {
 public:
  virtual ~Leases() = default;
  /// The address currently leased to (or, in proxy mode, observed for) this MAC, lower case
  /// "52:54:00:12:34:56"; nullopt when none is live.
  [[nodiscard]] virtual std::optional<std::string> address_of(std::string_view mac) const = 0;
};

/// The machine registry as the PXE servers see it; the coordinator implements it and
/// `lab serve` wires it in. PXE code never depends on the coordinator itself.
class Registry {
 public:
  virtual ~Registry() = default;
  /// The machine with this MAC ("52:54:00:12:34:56", lower case), if known. Answers from
  /// memory: safe to call on an io_context thread.
  virtual std::optional<Machine> find_by_mac(std::string_view mac) = 0;
  /// The address an operator registered this MAC with for network boot (`lab machine
  /// register`), if any. Answers from memory.
  virtual std::optional<std::string> registered_ip(std::string_view mac) = 0;
  /// The boot token for `mac` bound to `ip` (the address this appliance's DHCP leased to the
  /// MAC, or the registered one; never empty), valid for `ttl`: the live one when there is
  /// one (a repeated script request gets the same token), else a new one. At most one live
  /// boot token per MAC. Writes to the store: call it on the blocking pool, not on an
  /// io_context thread.
  virtual Result<BootToken> mint_boot_token(std::string_view mac, std::string_view ip,
                                            std::chrono::seconds ttl) = 0;
};

}  // namespace lab::pxe::registry
