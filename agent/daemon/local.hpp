#pragma once
// `labd labels`, `labd secret get` and `labd status` as a client of the local API. When the
// daemon does not answer, the same API is served in-process from the cache (which needs the
// data key, so in practice root), so reads keep working while the agent is stopped.

#include "agent/daemon/settings.hpp"
#include "shared/errors/error.hpp"

#include <string>

namespace lab::agent::daemon {

struct LocalAnswer {
  unsigned status = 0;
  std::string body;
  bool from_daemon = true;  // false: answered in-process from the cache
};

/// GET `path` ("/v1/labels") of the local API. not_running when neither the socket answers nor
/// the cache opens here (with both reasons).
Result<LocalAnswer> local_get(const Settings& settings, std::string_view path);

/// True when a running labd answers on the local API socket.
bool daemon_answers(const Settings& settings);

/// The status document: the daemon's /v1/status plus "daemon": "running"/"stopped" ("sync":
/// "stopped" when read from the cache because the daemon does not answer). A node that has not
/// joined gives {"joined": false} and no node_id; one whose cache cannot be opened gives its
/// node id from node.json and the reason as "error".
Result<std::string> status_json(const Settings& settings);

}  // namespace lab::agent::daemon
