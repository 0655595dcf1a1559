#pragma once

namespace lab::pxe::events {
class Sink;
}
namespace lab::pxe::recorder {
class Recorder;
}
namespace lab::pxe::registry {
class Leases;
class Registry;
}  // namespace lab::pxe::registry

namespace lab::bootstrap::serve {

/// Interfaces one component offers to those created after it (the composition root's wiring
/// board). Each member is null until the component providing it is created.
struct Services {
  /// The boot flight recorder; the PXE servers report every step of a boot to it.
  pxe::events::Sink* boot_events = nullptr;
  /// The same recorder's read side, for the operator API's machine timelines.
  pxe::recorder::Recorder* recorder = nullptr;
  /// The machine registry (the coordinator); the HTTP boot server mints boot tokens through it.
  pxe::registry::Registry* registry = nullptr;
  /// What this appliance's DHCP has leased (durable, from the lease journal); the HTTP boot
  /// server binds boot tokens to it. Null without our DHCP.
  const pxe::registry::Leases* leases = nullptr;
};

}  // namespace lab::bootstrap::serve
