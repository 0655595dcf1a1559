#include "bootstrap/api/routes.hpp"

namespace lab::bootstrap::api {
namespace {

std::vector<std::string_view> split(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t i = 1;  // paths start with '/'
  while (i <= path.size()) {
    const auto j = path.find('/', i);
    const auto end = j == std::string_view::npos ? path.size() : j;
    out.push_back(path.substr(i, end - i));
    i = end + 1;
  }
  return out;
}

bool matches(std::string_view pattern, const std::vector<std::string_view>& segments,
             std::vector<std::string>& params) {
  const auto parts = split(pattern);
  if (parts.size() != segments.size())
    return false;
  std::vector<std::string> out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].starts_with('{')) {
      if (segments[i].empty())
        return false;
      out.emplace_back(segments[i]);
    } else if (parts[i] != segments[i]) {
      return false;
    }
  }
  params = std::move(out);
  return true;
}

}  // namespace

const std::vector<Route>& routes() {
  static const std::vector<Route> kTable = {
      {"POST", "/v1/join", RouteId::join},
      {"GET", "/v1/agent/bundle", RouteId::agent_bundle},
      {"GET", "/v1/agent/kept", RouteId::agent_kept},
      {"GET", "/v1/agent/fleet", RouteId::agent_fleet},
      {"POST", "/v1/agent/renew", RouteId::agent_renew},
      {"POST", "/v1/agent/report", RouteId::agent_report},
      {"POST", "/v1/renew", RouteId::renew_with_proof},
      {"POST", "/v1/tokens", RouteId::tokens_create},
      {"GET", "/v1/tokens", RouteId::tokens_list},
      {"DELETE", "/v1/tokens/{id}", RouteId::token_delete},
      {"GET", "/v1/nodes", RouteId::nodes_list},
      {"GET", "/v1/nodes/{id}", RouteId::node_get},
      {"PATCH", "/v1/nodes/{id}/labels", RouteId::node_labels},
      {"POST", "/v1/nodes/{id}/revoke", RouteId::node_revoke},
      {"DELETE", "/v1/nodes/{id}", RouteId::node_delete},
      {"POST", "/v1/nodes/{id}/accept", RouteId::node_accept},
      {"POST", "/v1/nodes/{id}/reinstall", RouteId::node_reinstall},
      {"PATCH", "/v1/nodes/{id}/macs", RouteId::node_macs},
      {"GET", "/v1/machines", RouteId::machines_list},
      {"PUT", "/v1/machines/{mac}", RouteId::machine_put},
      {"DELETE", "/v1/machines/{mac}", RouteId::machine_delete},
      {"GET", "/v1/operators", RouteId::operators_list},
      {"POST", "/v1/operators", RouteId::operator_add},
      {"DELETE", "/v1/operators/{name}", RouteId::operator_revoke},
      {"GET", "/v1/groups", RouteId::groups_list},
      {"PUT", "/v1/groups/{name}", RouteId::group_put},
      {"DELETE", "/v1/groups/{name}", RouteId::group_delete},
      {"GET", "/v1/groups/{name}/members", RouteId::group_members},
      {"GET", "/v1/checks", RouteId::checks_list},
      {"PUT", "/v1/checks/{name}", RouteId::check_put},
      {"DELETE", "/v1/checks/{name}", RouteId::check_delete},
      {"GET", "/v1/secrets", RouteId::secrets_list},
      {"PUT", "/v1/secrets/{name}", RouteId::secret_put},
      {"POST", "/v1/secrets/{name}/grant", RouteId::secret_grant},
      {"DELETE", "/v1/secrets/{name}", RouteId::secret_delete},
      {"GET", "/v1/audit", RouteId::audit_list},
      {"GET", "/v1/audit/verify", RouteId::audit_verify},
      {"GET", "/v1/audit/head", RouteId::audit_head},
      {"GET", "/v1/machines/{mac}/timeline", RouteId::machine_timeline},
      {"GET", "/metrics", RouteId::metrics},
  };
  return kTable;
}

RouteMatch match_route(std::string_view method, std::string_view path) {
  RouteMatch m;
  if (path.empty() || path.front() != '/')
    return m;
  const auto segments = split(path);
  for (const auto& r : routes()) {
    std::vector<std::string> params;
    if (!matches(r.pattern, segments, params))
      continue;
    // HEAD is answered like GET by the server (no body).
    if (r.method == method || (method == "HEAD" && r.method == "GET")) {
      m.route = &r;
      m.params = std::move(params);
      m.path_known = true;
      m.allowed.clear();
      return m;
    }
    m.path_known = true;
    if (!m.allowed.empty())
      m.allowed += ", ";
    m.allowed += r.method;
  }
  return m;
}

}  // namespace lab::bootstrap::api
