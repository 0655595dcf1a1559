#include "bootstrap/api/codec.hpp"

#include "shared/config/config.hpp"
#include "shared/json/json.hpp"
#include "shared/labels/label.hpp"
#include "shared/protocol/protocol.hpp"

#include <boost/json/serialize.hpp>

namespace lab::bootstrap::api {
namespace {

namespace json = boost::json;
using coordinator::CoordinatorError;

json::object labels_json(const shared::labels::LabelSet& labels) {
  json::object o;
  for (const auto& [k, v] : labels)
    o[k] = v;
  return o;
}

json::array check_results_json(const std::vector<shared::protocol::CheckResult>& results) {
  json::array a;
  for (const auto& r : results)
    a.push_back(shared::protocol::check_result_to_json(r));
  return a;
}

json::array strings_json(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v)
    a.emplace_back(s);
  return a;
}

Error field_error(std::string_view field, const Error& e) {
  return {shared::json::JsonError::invalid_value,
          "field '" + std::string(field) + "': " + e.detail()};
}

}  // namespace

json::object to_json(const coordinator::TokenInfo& t) {
  return {{"id", t.id},
          {"kind", t.kind},
          {"labels", labels_json(t.labels)},
          {"bind", {{"mac", t.binding.mac}, {"ip", t.binding.ip}, {"host", t.binding.host}}},
          {"description", t.description},
          {"created_at", t.created_at},
          {"expires_at", t.expires_at},
          {"state", t.state},
          {"used_by", t.used_by}};
}

json::object to_json(const coordinator::CreatedToken& t) {
  return {{"token", t.token}, {"join_string", t.join_string}, {"info", to_json(t.info)}};
}

json::object to_json(const coordinator::NodeInfo& n) {
  return {{"id", n.id},
          {"name", n.name},
          {"macs", strings_json(n.macs)},
          {"state", n.state},
          {"reported_state", n.reported_state},
          {"polling", n.polling},
          {"labels", labels_json(n.labels)},
          {"groups", strings_json(n.groups)},
          {"facts", n.facts},
          {"created_at", n.created_at},
          {"last_seen", n.last_seen},
          {"agent_version", n.agent_version},
          {"cert_serial", n.cert_serial},
          {"cert_expires_at", n.cert_expires_at},
          {"key_protection", n.key_protection},
          {"reinstall_armed", n.reinstall_armed},
          {"revision", n.revision},
          {"agent_revision", n.agent_revision ? json::value(*n.agent_revision) : json::value()},
          // How far the agent's cache is behind its newest bundle, in revisions; null when
          // its agent has not polled since the coordinator started.
          {"revision_lag",
           n.agent_revision ? json::value(std::max<std::int64_t>(0, n.revision - *n.agent_revision))
                            : json::value()},
          {"checks", check_results_json(n.checks)},
          {"config_run", n.config_run},
          {"pillars", json::object{{"sync", n.pillars.sync},
                                   {"config", n.pillars.config},
                                   {"health", n.pillars.health},
                                   {"identity", n.pillars.identity}}}};
}

json::object to_json(const coordinator::MachineInfo& m) {
  return {{"mac", m.mac},
          {"ip", m.ip},
          {"description", m.description},
          {"registered_at", m.registered_at},
          {"node_id", m.node_id}};
}

json::object to_json(const coordinator::OperatorInfo& o) {
  return {{"name", o.name},
          {"created_at", o.created_at},
          {"expires_at", o.expires_at},
          {"state", o.state},
          {"created_by", o.created_by}};
}

json::object to_json(const coordinator::CreatedOperator& o) {
  json::object out = to_json(o.info);
  out["token"] = o.token;
  return out;
}

json::object to_json(const coordinator::CheckInfo& c) {
  json::object o = shared::protocol::check_to_json(c.check);
  o["selector"] = c.selector;
  return o;
}

Result<coordinator::CheckInfo> check_from_json(std::string_view name, const json::object& o) {
  json::object spec = o;
  spec["name"] = name;  // the path names it
  coordinator::CheckInfo c;
  LAB_TRY_ASSIGN(auto selector, shared::json::optional_string(o, "selector"));
  c.selector = selector.value_or("");
  spec.erase("selector");
  LAB_TRY_ASSIGN(c.check, shared::protocol::check_from_json(spec));
  return c;
}

json::object to_json(const coordinator::GroupInfo& g) {
  return {{"name", g.name},
          {"selector", g.selector},
          {"includes", strings_json(g.includes)},
          {"excludes", strings_json(g.excludes)}};
}

json::object to_json(const coordinator::SecretInfo& s) {
  return {{"name", s.name},       {"entitlement", s.entitlement},
          {"version", s.version}, {"updated_at", s.updated_at},
          {"size", s.size},       {"require", s.require}};
}

json::object to_json(const coordinator::AuditEvent& e) {
  return {{"seq", e.seq},         {"at", e.at},         {"actor", e.actor},
          {"address", e.address}, {"action", e.action}, {"subject", e.subject},
          {"detail", e.detail},   {"hash", e.hash}};
}

json::object to_json(const coordinator::AuditCheck& c) {
  return {{"ok", c.ok}, {"rows", c.rows}, {"first_bad_seq", c.first_bad_seq}, {"reason", c.reason}};
}

Result<shared::labels::LabelSet> labels_from_json(const json::object& o, std::string_view key) {
  shared::labels::LabelSet out;
  const auto* v = o.if_contains(key);
  if (v == nullptr || v->is_null())
    return out;
  LAB_TRY_ASSIGN(const json::object* labels, shared::json::get_object(o, key));
  for (const auto& [k, value] : *labels) {
    if (!value.is_string()) {
      return Error(shared::json::JsonError::wrong_type,
                   "field '" + std::string(key) + "." + std::string(k) + "': expected a string");
    }
    if (auto r = shared::labels::validate_key(k); !r)
      return field_error(key, r.error());
    const auto text = value.get_string();
    if (auto r = shared::labels::validate_value(text); !r)
      return field_error(std::string(key) + "." + std::string(k), r.error());
    out.emplace(std::string(k), std::string(text));
  }
  return out;
}

Result<coordinator::TokenSpec> token_spec_from_json(const json::object& o) {
  coordinator::TokenSpec spec;
  LAB_TRY_ASSIGN(spec.labels, labels_from_json(o, "labels"));
  LAB_TRY_ASSIGN(auto ttl, shared::json::optional_string(o, "ttl"));
  if (ttl) {
    auto d = shared::config::parse_duration(*ttl);
    if (!d || d->count() == 0)
      return Error(shared::json::JsonError::invalid_value,
                   "field 'ttl': expected a duration like \"90s\", \"15m\" or \"1h\"");
    spec.ttl = *d;
  }
  if (const auto* bind = o.if_contains("bind"); bind != nullptr && !bind->is_null()) {
    LAB_TRY_ASSIGN(const json::object* b, shared::json::get_object(o, "bind"));
    LAB_TRY_ASSIGN(auto mac, shared::json::optional_string(*b, "mac"));
    LAB_TRY_ASSIGN(auto ip, shared::json::optional_string(*b, "ip"));
    LAB_TRY_ASSIGN(auto host, shared::json::optional_string(*b, "host"));
    spec.binding.mac = mac.value_or("");
    spec.binding.ip = ip.value_or("");
    spec.binding.host = host.value_or("");
  }
  LAB_TRY_ASSIGN(auto description, shared::json::optional_string(o, "description"));
  spec.description = description.value_or("");
  return spec;
}

Result<LabelPatch> label_patch_from_json(const json::object& o) {
  LabelPatch p;
  LAB_TRY_ASSIGN(p.set, labels_from_json(o, "set"));
  if (const auto* r = o.if_contains("remove"); r != nullptr && !r->is_null()) {
    LAB_TRY_ASSIGN(p.remove, shared::json::get_strings(o, "remove"));
    for (const auto& k : p.remove) {
      if (auto v = shared::labels::validate_key(k); !v)
        return field_error("remove", v.error());
    }
  }
  if (const auto* w = o.if_contains("overwrite"); w != nullptr && !w->is_null()) {
    if (!w->is_bool()) {
      return Error(shared::json::JsonError::wrong_type,
                   "field 'overwrite': expected true or false");
    }
    p.overwrite = w->get_bool();
  }
  if (p.set.empty() && p.remove.empty()) {
    return Error(shared::json::JsonError::missing_field,
                 "field 'set' or 'remove': nothing to change");
  }
  return p;
}

Result<coordinator::GroupInfo> group_from_json(std::string_view name, const json::object& o) {
  coordinator::GroupInfo g;
  g.name = std::string(name);
  LAB_TRY_ASSIGN(auto selector, shared::json::optional_string(o, "selector"));
  g.selector = selector.value_or("");
  for (const auto* key : {"includes", "excludes"}) {
    if (const auto* v = o.if_contains(key); v != nullptr && !v->is_null()) {
      LAB_TRY_ASSIGN(auto list, shared::json::get_strings(o, key));
      (std::string_view(key) == "includes" ? g.includes : g.excludes) = std::move(list);
    }
  }
  return g;
}

ErrorStatus status_for(const Error& e) {
  const auto& code = e.code();
  if (code.category() == coordinator::coordinator_category()) {
    switch (static_cast<CoordinatorError>(code.value())) {
      case CoordinatorError::not_found:
        return {404, "not_found", true};
      case CoordinatorError::already_exists:
        return {409, "already_exists", true};
      case CoordinatorError::group_cycle:
        return {409, "group_cycle", true};
      case CoordinatorError::invalid_argument:
        return {400, "invalid_argument", true};
      case CoordinatorError::certificate_invalid:
        return {400, "invalid_csr", true};
      case CoordinatorError::token_unknown:
      case CoordinatorError::token_expired:
      case CoordinatorError::token_used:
      case CoordinatorError::token_revoked:
      case CoordinatorError::token_binding:
        return {403, "invalid_token", false};
      case CoordinatorError::node_revoked:
        return {403, "forbidden", false};
      case CoordinatorError::store_failed:
        return {503, "store_failed", false};
      case CoordinatorError::proof_invalid:
        return {403, "invalid_proof", true};
      case CoordinatorError::renew_grace_passed:
        return {403, "renew_grace_passed", true};
      case CoordinatorError::mac_owned:
        return {409, "mac_owned", true};
      case CoordinatorError::node_active:
        return {409, "node_active", true};
      case CoordinatorError::label_exists:
        return {409, "label_exists", true};
      case CoordinatorError::no_lease:
        return {403, "no_lease", true};
      case CoordinatorError::rate_limited:
        return {429, "rate_limited", true};
      case CoordinatorError::operator_unknown:
      case CoordinatorError::operator_expired:
      case CoordinatorError::operator_revoked:
        return {401, "unauthorized", true};
    }
    return {500, "internal", false};
  }
  // Decoding and validation errors of a request body name the field and are safe to show.
  if (code.category() == shared::json::json_category() ||
      code.category() == shared::labels::label_category() ||
      code.category() == shared::protocol::protocol_category()) {
    return {400, "invalid_argument", true};
  }
  return {500, "internal", false};
}

std::string error_body(std::string_view message, std::string_view code) {
  return json::serialize(json::object{{"error", message}, {"code", code}});
}

}  // namespace lab::bootstrap::api
