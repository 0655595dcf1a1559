#pragma once

#include <string_view>

namespace lab::images {

/// /init of the agent OS (busybox sh, PID 1): mounts, loads the NIC modules, brings up the boot
/// interface with udhcpc and runs `labd boot`. It never exits, since PID 1 exiting panics.
extern const std::string_view kAgentOsInit;
/// The udhcpc event script: configures the interface, default route and resolv.conf.
extern const std::string_view kUdhcpcScript;

}  // namespace lab::images
