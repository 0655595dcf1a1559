#include "bootstrap/sshinstall/operator_enroller.hpp"

#include "shared/json/json.hpp"

#include <boost/json/serialize.hpp>

namespace lab::bootstrap::sshinstall {
namespace {

Error api_error(const std::string& what, const shared::http::ClientResponse& r) {
  std::string reason = r.body;
  if (auto o = shared::json::parse_object(r.body); o) {
    if (auto e = shared::json::get_string(*o, "error"); e) {
      reason = *e;
    }
  }
  return {InstallError::coordinator_failed,
          what + ": HTTP " + std::to_string(r.status) + (reason.empty() ? "" : ": " + reason)};
}

}  // namespace

OperatorEnroller::OperatorEnroller(shared::http::ClientOptions client,
                                   std::chrono::seconds token_ttl, std::string description)
    : client_(std::move(client)), token_ttl_(token_ttl), description_(std::move(description)) {}

Result<shared::http::ClientResponse> OperatorEnroller::call(std::string_view method,
                                                            const std::string& path,
                                                            const std::string& body) {
  shared::http::Client client(client_);
  return client.request(method, path, body, body.empty() ? "" : "application/json");
}

Result<Enroller::Minted> OperatorEnroller::mint(const std::string& host,
                                                const shared::labels::LabelSet& labels) {
  boost::json::object req;
  boost::json::object l;
  for (const auto& [k, v] : labels) {
    l[k] = v;
  }
  req["labels"] = std::move(l);
  req["ttl"] = std::to_string(token_ttl_.count()) + "s";
  req["bind"] = boost::json::object{{"host", host}};
  req["description"] = description_;
  LAB_TRY_ASSIGN(auto r, call("POST", "/v1/tokens", boost::json::serialize(req)));
  if (r.status != 201 && r.status != 200) {
    return api_error("creating a join token", r);
  }
  LAB_TRY_ASSIGN(auto o, shared::json::parse_object(r.body));
  Minted m;
  LAB_TRY_ASSIGN(m.join_string, shared::json::get_string(o, "join_string"));
  LAB_TRY_ASSIGN(const auto* info, shared::json::get_object(o, "info"));
  LAB_TRY_ASSIGN(m.token_id, shared::json::get_string(*info, "id"));
  return m;
}

Result<void> OperatorEnroller::revoke_token(const std::string& token_id) {
  LAB_TRY_ASSIGN(auto r, call("DELETE", "/v1/tokens/" + token_id));
  if (r.status >= 300 && r.status != 404 && r.status != 409) {
    return api_error("revoking token " + token_id, r);
  }
  return {};
}

Result<std::string> OperatorEnroller::token_node(const std::string& token_id) {
  LAB_TRY_ASSIGN(auto r, call("GET", "/v1/tokens"));
  if (r.status != 200) {
    return api_error("listing tokens", r);
  }
  LAB_TRY_ASSIGN(auto v, shared::json::parse(r.body));
  if (!v.is_array()) {
    return Error(InstallError::coordinator_failed, "GET /v1/tokens: expected an array");
  }
  for (const auto& t : v.as_array()) {
    if (!t.is_object()) {
      continue;
    }
    const auto& o = t.as_object();
    if (auto id = shared::json::get_string(o, "id"); id && *id == token_id) {
      auto used = shared::json::optional_string(o, "used_by");
      return used && *used ? **used : std::string();
    }
  }
  return Error(InstallError::coordinator_failed, "token " + token_id + " is not listed");
}

Result<bool> OperatorEnroller::node_active(const std::string& node_id) {
  LAB_TRY_ASSIGN(auto r, call("GET", "/v1/nodes/" + node_id));
  if (r.status == 404) {
    return false;
  }
  if (r.status != 200) {
    return api_error("looking up node " + node_id, r);
  }
  LAB_TRY_ASSIGN(auto o, shared::json::parse_object(r.body));
  LAB_TRY_ASSIGN(auto state, shared::json::get_string(o, "state"));
  return state != "revoked";
}

Result<void> OperatorEnroller::revoke_node(const std::string& node_id) {
  LAB_TRY_ASSIGN(auto r, call("POST", "/v1/nodes/" + node_id + "/revoke"));
  if (r.status >= 300 && r.status != 404) {
    return api_error("revoking node " + node_id, r);
  }
  return {};
}

}  // namespace lab::bootstrap::sshinstall
