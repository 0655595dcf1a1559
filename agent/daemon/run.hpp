#pragma once
// `labd run`: the agent's service. Serves the local API from the cache at once, renders the
// files, keeps the cache in step with the coordinator (long-poll, backoff, renewal) and tells
// systemd it is ready and alive (Type=notify, WatchdogSec).

#include "agent/daemon/settings.hpp"

namespace lab::agent::daemon {

/// Runs until SIGTERM or SIGINT; returns the process exit code. Logs its own failures.
int run(const Settings& settings);

}  // namespace lab::agent::daemon
