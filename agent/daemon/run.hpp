#pragma once
// `labd run`: the agent's service. Serves the local API from the cache at once, renders the
// files, keeps the cache in step with the coordinator (long-poll, backoff, renewal) and tells
// systemd it is ready and alive (Type=notify, WatchdogSec).

#include "agent/daemon/settings.hpp"

namespace lab::agent::daemon {

/// The exit status of `labd run` on a node that has not joined (EX_CONFIG in sysexits.h):
/// nothing to serve, and nothing a restart fixes, so the unit does not restart on it
/// (RestartPreventExitStatus=78).
inline constexpr int kExitNotJoined = 78;

/// Runs until SIGTERM or SIGINT; returns the process exit code (0, 1, or kExitNotJoined).
/// Logs its own failures, each on one line.
int run(const Settings& settings);

}  // namespace lab::agent::daemon
