#pragma once
// The JSON shapes of the coordinator API (API.md): pure functions between the coordinator's
// types and the bodies on the wire, shared by the server and the CLI. No sockets, no clock.
#include "bootstrap/coordinator/coordinator.hpp"
#include "shared/errors/error.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace lab::bootstrap::api {

boost::json::object to_json(const coordinator::TokenInfo& t);
boost::json::object to_json(const coordinator::CreatedToken& t);
boost::json::object to_json(const coordinator::NodeInfo& n);
boost::json::object to_json(const coordinator::GroupInfo& g);
boost::json::object to_json(const coordinator::CheckInfo& c);
boost::json::object to_json(const coordinator::SecretInfo& s);
boost::json::object to_json(const coordinator::AuditEvent& e);
boost::json::object to_json(const coordinator::AuditCheck& c);
boost::json::object to_json(const coordinator::MachineInfo& m);
boost::json::object to_json(const coordinator::OperatorInfo& o);
boost::json::object to_json(const coordinator::CreatedOperator& o);

template <class T>
boost::json::array to_json_array(const std::vector<T>& items) {
  boost::json::array a;
  a.reserve(items.size());
  for (const auto& i : items)
    a.emplace_back(to_json(i));
  return a;
}

/// POST /v1/tokens: {"labels":{…},"ttl":"1h","bind":{"mac","ip","host"},"description"}.
/// Errors name the field ("field 'ttl': …").
Result<coordinator::TokenSpec> token_spec_from_json(const boost::json::object& o);

/// PATCH /v1/nodes/{id}/labels: {"set":{…},"remove":[…]}.
struct LabelPatch {
  shared::labels::LabelSet set;
  std::vector<std::string> remove;
  bool overwrite = true;  // "overwrite": false refuses to change an existing key's value
};
Result<LabelPatch> label_patch_from_json(const boost::json::object& o);

/// PUT /v1/groups/{name}: {"selector":…,"includes":[…],"excludes":[…]}.
Result<coordinator::GroupInfo> group_from_json(std::string_view name, const boost::json::object& o);

/// PUT /v1/checks/{name}: the check's wire form (shared/protocol/checks.hpp) plus "selector".
Result<coordinator::CheckInfo> check_from_json(std::string_view name, const boost::json::object& o);

/// {"labels": {"k": "v"}} member as a validated LabelSet; absent or null is empty.
Result<shared::labels::LabelSet> labels_from_json(const boost::json::object& o,
                                                  std::string_view key);

/// How the API answers a coordinator error: the status and the machine code of the body.
/// Token and authentication failures are not mapped here; their routes answer 401/403
/// without detail.
struct ErrorStatus {
  unsigned status = 500;
  std::string_view code = "internal";
  bool show_detail = false;  // the detail is safe to show the operator (bad argument, cycle)
};
ErrorStatus status_for(const Error& e);

/// {"error": message, "code": code}.
std::string error_body(std::string_view message, std::string_view code);

}  // namespace lab::bootstrap::api
