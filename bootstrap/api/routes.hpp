#pragma once
// The route table of the coordinator API (API.md): method + path pattern → route. Pure.
#include <string>
#include <string_view>
#include <vector>

namespace lab::bootstrap::api {

enum class RouteId {
  join,
  agent_bundle,
  agent_kept,
  agent_fleet,
  agent_renew,
  agent_report,
  renew_with_proof,
  tokens_create,
  tokens_list,
  token_delete,
  nodes_list,
  node_get,
  node_labels,
  node_revoke,
  node_delete,
  node_accept,
  node_reinstall,
  node_macs,
  machines_list,
  machine_put,
  machine_delete,
  operators_list,
  operator_add,
  operator_revoke,
  groups_list,
  group_put,
  group_delete,
  group_members,
  checks_list,
  check_put,
  check_delete,
  secrets_list,
  secret_put,
  secret_grant,
  secret_delete,
  audit_list,
  audit_verify,
  audit_head,
  machine_timeline,
  metrics,
};

struct Route {
  std::string_view method;
  std::string_view pattern;  // "/v1/nodes/{id}/labels"; also the route's name in /metrics
  RouteId id;
};

struct RouteMatch {
  const Route* route = nullptr;     // null: no route for this method and path
  std::vector<std::string> params;  // the {…} segments, in order
  bool path_known = false;          // the path exists with another method (405)
  std::string allowed;              // "GET, PUT" when path_known
};

/// Matches a percent-decoded path. A parameter segment matches any non-empty segment.
RouteMatch match_route(std::string_view method, std::string_view path);

/// Every route, in table order.
const std::vector<Route>& routes();

}  // namespace lab::bootstrap::api
