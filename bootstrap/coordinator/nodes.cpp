// Nodes: queries, labels, acceptance, revocation, agent reports and the MAC map.
#include "bootstrap/coordinator/audit.hpp"
#include "bootstrap/coordinator/coordinator_impl.hpp"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <tuple>

namespace lab::bootstrap::coordinator {
namespace {

namespace lb = shared::labels;

constexpr std::array kReportStates{"enrolled", "provisioning", "ready"};

Error no_node(std::string_view id_or_name) {
  return {CoordinatorError::not_found, "no node '" + std::string(id_or_name) + "'"};
}

}  // namespace

Pillars pillars_of(const NodeInfo& n, std::int64_t now) {
  Pillars p;
  if (n.state == "offline")
    p.sync = "offline";
  else if (!n.agent_revision)
    p.sync = "unknown";
  else
    p.sync = *n.agent_revision >= n.revision ? "current" : "behind";
  if (n.config_run.empty()) {
    p.config = "none";
  } else {
    const auto* failures = n.config_run.if_contains("failures");
    p.config =
        failures != nullptr && failures->is_int64() && failures->as_int64() > 0 ? "failed" : "ok";
  }
  p.health = shared::protocol::health_of(n.checks);
  constexpr std::int64_t kExpiringWithin = std::int64_t{24} * 3600;
  if (n.state == "revoked")
    p.identity = "revoked";
  else if (n.cert_expires_at != 0 && n.cert_expires_at <= now)
    p.identity = "expired";
  else if (n.cert_expires_at != 0 && n.cert_expires_at - now < kExpiringWithin)
    p.identity = "expiring";
  else if (n.key_protection == "file")
    p.identity = "degraded";
  else
    p.identity = "ok";
  return p;
}

NodeInfo CoordinatorImpl::node_info(const NodeRecord& n) const {
  NodeInfo info;
  info.id = n.id;
  info.name = n.name;
  info.macs = n.macs;
  info.state = n.state;
  info.reported_state = n.state;
  const WatchHub::Presence seen = hub_->presence(n.id);
  info.polling = seen.polling;
  info.last_seen = std::max(n.last_seen, seen.polling ? now() : seen.last_seen);
  if (is_active_state(n.state) && !seen.polling &&
      now() - info.last_seen >= options_.offline_after.count())
    info.state = "offline";
  info.labels = n.labels;
  info.groups = groups_of(n.labels);
  info.facts = n.facts;
  info.created_at = n.created_at;
  info.agent_version = n.agent_version;
  info.cert_serial = n.cert_serial;
  info.cert_expires_at = n.cert_expires_at;
  info.key_protection = n.key_protection;
  info.reinstall_armed = n.reinstall_armed;
  std::tie(info.revision, info.agent_revision) = hub_->revisions(n.id);
  info.checks = n.checks;
  info.config_run = n.config_run;
  info.pillars = pillars_of(info, now());
  return info;
}

Result<std::vector<NodeInfo>> CoordinatorImpl::list_nodes(std::string_view selector) {
  std::optional<lb::Selector> sel;
  if (!selector.empty()) {
    auto parsed = lb::Selector::parse(selector);
    if (!parsed) {
      return Error(CoordinatorError::invalid_argument,
                   "selector '" + std::string(selector) + "': " + parsed.error().detail());
    }
    sel = std::move(*parsed);
  }
  const Lock lock(state_mutex_);
  std::vector<NodeInfo> out;
  for (const auto& [id, n] : model_.nodes) {
    if (!sel || sel->matches(n.labels))
      out.push_back(node_info(n));
  }
  return out;
}

Result<NodeInfo> CoordinatorImpl::get_node(std::string_view id_or_name) {
  const Lock lock(state_mutex_);
  const NodeRecord* n = model_.find(id_or_name);
  if (n == nullptr)
    return no_node(id_or_name);
  return node_info(*n);
}

Result<NodeInfo> CoordinatorImpl::label_node(std::string_view id_or_name, const lb::LabelSet& set,
                                             const std::vector<std::string>& remove,
                                             const Actor& actor, Overwrite overwrite) {
  LAB_TRY(validate_labels(set));
  for (const auto& key : remove) {
    if (auto r = lb::validate_key(key); !r) {
      return Error(CoordinatorError::invalid_argument,
                   "label key '" + key + "': " + r.error().detail());
    }
  }
  Lock lock(state_mutex_);
  const NodeRecord* found = model_.find(id_or_name);
  if (found == nullptr)
    return no_node(id_or_name);
  const std::string id = found->id;
  if (overwrite == Overwrite::no) {
    for (const auto& [k, v] : set) {
      auto it = found->labels.find(k);
      if (it != found->labels.end() && it->second != v) {
        return Error(CoordinatorError::label_exists,
                     fmt::format("node {} already has {}={}; changing it to {}={} needs overwrite",
                                 found->name, k, it->second, k, v));
      }
    }
  }
  lb::LabelSet labels = found->labels;
  for (const auto& key : remove)
    labels.erase(key);
  for (const auto& [k, v] : set)
    labels[k] = v;
  if (labels == found->labels)
    return node_info(*found);
  const std::int64_t t = now();
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  LAB_TRY(store_->run("UPDATE nodes SET labels = ? WHERE id = ?", labels_to_json(labels), id));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  boost::json::array removed;
  for (const auto& key : remove)
    removed.emplace_back(key);
  LAB_TRY(append_audit(
      *store_, {t, actor, "node.label", id, {{"set", lb::format_list(set)}, {"remove", removed}}}));
  auto apply = [&] {
    auto& n = model_.nodes[id];
    n.labels = std::move(labels);
    refresh_machine(n);
  };
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, Dirty::node(id), apply));
  NodeInfo info = node_info(model_.nodes[id]);
  lock.unlock();
  deliver(std::move(d));
  return info;
}

Result<void> CoordinatorImpl::revoke_node(std::string_view id_or_name, const Actor& actor) {
  Lock lock(state_mutex_);
  const NodeRecord* found = model_.find(id_or_name);
  if (found == nullptr)
    return no_node(id_or_name);
  if (found->state == "revoked")
    return {};
  const std::string id = found->id;
  const std::int64_t t = now();
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  LAB_TRY(store_->run("UPDATE nodes SET state = 'revoked' WHERE id = ?", id));
  LAB_TRY(store_->run("UPDATE certs SET revoked_at = ? WHERE node_id = ? AND revoked_at IS NULL", t,
                      id));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  LAB_TRY(append_audit(*store_, {t, actor, "node.revoke", id, {{"name", found->name}}}));
  auto apply = [&] {
    auto& n = model_.nodes[id];
    n.state = "revoked";
    for (auto& [serial, cert] : model_.certs) {
      if (cert.node_id == id)
        cert.revoked = true;
    }
    refresh_machine(n);
  };
  // Every bundle lists the revoked serials.
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, Dirty::everything(), apply));
  lock.unlock();
  deliver(std::move(d));
  return {};
}

Result<void> CoordinatorImpl::delete_node(std::string_view id_or_name, const Actor& actor) {
  Lock lock(state_mutex_);
  const NodeRecord* found = model_.find(id_or_name);
  if (found == nullptr)
    return no_node(id_or_name);
  if (found->state != "revoked") {
    return Error(CoordinatorError::node_active,
                 "node " + found->name + " is " + found->state + "; only a revoked node can be " +
                     "deleted (revoke it first: its certificates are refused from then on)");
  }
  const std::string id = found->id;
  const std::string name = found->name;
  const std::vector<std::string> macs = found->macs;
  const std::int64_t t = now();
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  LAB_TRY(store_->run("DELETE FROM node_macs WHERE node_id = ?", id));
  LAB_TRY(store_->run("DELETE FROM nodes WHERE id = ?", id));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  boost::json::array mac_list;
  for (const auto& mac : macs)
    mac_list.emplace_back(mac);
  LAB_TRY(
      append_audit(*store_, {t, actor, "node.delete", id, {{"name", name}, {"macs", mac_list}}}));
  auto apply = [&] {
    model_.nodes.erase(id);
    model_.id_by_name.erase(name);
    for (const auto& mac : macs) {
      model_.id_by_mac.erase(mac);
      forget_machine(mac);
    }
    views_.erase(id);
  };
  // The fleet envelope lists revoked nodes; this one leaves it (its serials stay).
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, Dirty::everything(), apply));
  lock.unlock();
  deliver(std::move(d));
  return {};
}

Result<NodeInfo> CoordinatorImpl::accept_node(std::string_view id_or_name, const Actor& actor) {
  Lock lock(state_mutex_);
  const NodeRecord* found = model_.find(id_or_name);
  if (found == nullptr)
    return no_node(id_or_name);
  if (found->state == "revoked")
    return Error(CoordinatorError::node_revoked, "node " + found->id + " is revoked");
  if (found->state != "discovered")
    return node_info(*found);  // already accepted: nothing to do
  const std::string id = found->id;
  const std::int64_t t = now();
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  LAB_TRY(store_->run("UPDATE nodes SET state = 'enrolled' WHERE id = ?", id));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  LAB_TRY(append_audit(*store_, {t, actor, "node.accept", id, {{"name", found->name}}}));
  const bool peer = !found->peer_address.empty();
  auto apply = [&] {
    auto& n = model_.nodes[id];
    n.state = "enrolled";
    refresh_machine(n);
  };
  LAB_TRY_ASSIGN(Deliveries d,
                 commit(tx, rev, peer ? ring_change(Dirty::node(id), t) : Dirty::node(id), apply));
  NodeInfo info = node_info(model_.nodes[id]);
  lock.unlock();
  deliver(std::move(d));
  return info;
}

Result<NodeInfo> CoordinatorImpl::reinstall_node(std::string_view id_or_name, const Actor& actor) {
  Lock lock(state_mutex_);
  const NodeRecord* found = model_.find(id_or_name);
  if (found == nullptr)
    return no_node(id_or_name);
  if (found->state == "revoked")
    return Error(CoordinatorError::node_revoked, "node " + found->id + " is revoked");
  if (found->macs.empty()) {
    return Error(CoordinatorError::invalid_argument,
                 "node " + found->name +
                     " has no MAC to recognise its next network boot by; "
                     "give it one with 'lab node macs " +
                     found->name + " --add MAC'");
  }
  if (found->reinstall_armed)
    return node_info(*found);
  const std::string id = found->id;
  const std::int64_t t = now();
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  LAB_TRY(store_->run("UPDATE nodes SET reinstall_armed = 1 WHERE id = ?", id));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  boost::json::array macs;
  for (const auto& mac : found->macs)
    macs.emplace_back(mac);
  LAB_TRY(append_audit(*store_,
                       {t, actor, "node.reinstall", id, {{"name", found->name}, {"macs", macs}}}));
  LAB_TRY_ASSIGN(Deliveries d,
                 commit(tx, rev, Dirty{}, [&] { model_.nodes[id].reinstall_armed = true; }));
  NodeInfo info = node_info(model_.nodes[id]);
  lock.unlock();
  deliver(std::move(d));
  return info;
}

Result<NodeInfo> CoordinatorImpl::set_node_macs(std::string_view id_or_name,
                                                const std::vector<std::string>& add_text,
                                                const std::vector<std::string>& remove_text,
                                                const Actor& actor) {
  std::vector<std::string> add;
  std::vector<std::string> remove;
  for (const auto* list : {&add_text, &remove_text}) {
    for (const auto& text : *list) {
      auto mac = canonical_mac(text);
      if (!mac) {
        return Error(CoordinatorError::invalid_argument,
                     "'" + text + "' is not a MAC address like 52:54:00:12:34:56");
      }
      (list == &add_text ? add : remove).push_back(*mac);
    }
  }
  Lock lock(state_mutex_);
  const NodeRecord* found = model_.find(id_or_name);
  if (found == nullptr)
    return no_node(id_or_name);
  const std::string id = found->id;
  std::vector<std::string> added;
  std::vector<std::string> removed;
  for (const auto& mac : add) {
    auto it = model_.id_by_mac.find(mac);
    if (it == model_.id_by_mac.end()) {
      if (std::find(added.begin(), added.end(), mac) == added.end())
        added.push_back(mac);
      continue;
    }
    if (it->second != id) {
      const NodeRecord* owner = model_.find(it->second);
      const std::string& name = owner ? owner->name : it->second;
      return Error(CoordinatorError::mac_owned,
                   fmt::format("MAC {0} belongs to node {1}; remove it there first "
                               "('lab node macs {1} --remove {0}')",
                               mac, name));
    }
  }
  for (const auto& mac : remove) {
    auto it = model_.id_by_mac.find(mac);
    if (it != model_.id_by_mac.end() && it->second == id &&
        std::find(removed.begin(), removed.end(), mac) == removed.end()) {
      removed.push_back(mac);
    }
  }
  if (added.empty() && removed.empty())
    return node_info(*found);
  const std::int64_t t = now();
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  for (const auto& mac : added) {
    LAB_TRY(store_->run("INSERT INTO node_macs (mac, node_id, source) VALUES (?, ?, 'operator')",
                        mac, id));
  }
  for (const auto& mac : removed)
    LAB_TRY(store_->run("DELETE FROM node_macs WHERE mac = ? AND node_id = ?", mac, id));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  boost::json::array a;
  boost::json::array r;
  for (const auto& mac : added)
    a.emplace_back(mac);
  for (const auto& mac : removed)
    r.emplace_back(mac);
  LAB_TRY(append_audit(*store_, {t, actor, "node.macs", id, {{"add", a}, {"remove", r}}}));
  auto apply = [&] {
    NodeRecord& n = model_.nodes[id];
    for (const auto& mac : removed) {
      std::erase(n.macs, mac);
      model_.id_by_mac.erase(mac);
      forget_machine(mac);
    }
    for (const auto& mac : added) {
      n.macs.push_back(mac);
      model_.id_by_mac[mac] = id;
    }
    std::sort(n.macs.begin(), n.macs.end());
    refresh_machine(n);
  };
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, Dirty{}, apply));
  NodeInfo info = node_info(model_.nodes[id]);
  lock.unlock();
  deliver(std::move(d));
  return info;
}

Result<void> CoordinatorImpl::report(const AgentIdentity& agent, std::string_view state,
                                     const boost::json::object& reported) {
  if (std::find(kReportStates.begin(), kReportStates.end(), state) == kReportStates.end()) {
    return Error(CoordinatorError::invalid_argument,
                 "state '" + std::string(state) + "': expected enrolled, provisioning or ready");
  }
  // Check results and the configuration run summary travel beside the facts; they are kept
  // apart (their own columns), bounded, so a node cannot make the coordinator hold more.
  boost::json::object facts = reported;
  std::optional<std::vector<shared::protocol::CheckResult>> checks;
  if (auto* v = facts.if_contains("checks"); v != nullptr) {
    if (!v->is_array() || v->as_array().size() > shared::protocol::kMaxChecks)
      return Error(CoordinatorError::invalid_argument,
                   "facts.checks: expected an array of at most 64 check results");
    checks.emplace();
    for (const auto& item : v->as_array()) {
      if (!item.is_object())
        return Error(CoordinatorError::invalid_argument, "facts.checks: a result is not an object");
      auto r = shared::protocol::check_result_from_json(item.as_object());
      if (!r)
        return Error(CoordinatorError::invalid_argument, "facts.checks: " + r.error().detail());
      checks->push_back(std::move(*r));
    }
    facts.erase("checks");
  }
  std::optional<boost::json::object> config_run;
  if (auto* v = facts.if_contains("config_run"); v != nullptr) {
    if (!v->is_object() || boost::json::serialize(*v).size() > 4096)
      return Error(CoordinatorError::invalid_argument,
                   "facts.config_run: expected an object of at most 4096 bytes");
    config_run = v->as_object();
    facts.erase("config_run");
  }
  std::optional<std::string> reported_peer;
  if (const auto* v = facts.if_contains("peer_address"); v && !v->is_null()) {
    if (!v->is_string() ||
        (!v->as_string().empty() && !valid_peer_address(std::string_view(v->as_string())))) {
      return Error(CoordinatorError::invalid_argument,
                   "facts.peer_address: expected an IP literal and a port like 10.0.0.7:8444 "
                   "or [fd00::7]:8444");
    }
    reported_peer = std::string(v->as_string());
  }
  Lock lock(state_mutex_);
  auto it = model_.nodes.find(agent.node_id);
  if (it == model_.nodes.end())
    return no_node(agent.node_id);
  NodeRecord& old = it->second;
  if (old.state == "revoked")
    return Error(CoordinatorError::node_revoked, "node " + old.id + " is revoked");
  const std::int64_t t = now();
  // Each report is a committed write; an agent reports once per start and after failures, so
  // a node that reports faster than this is broken or hostile.
  const double interval =
      static_cast<double>(std::max<std::int64_t>(1, options_.report_interval.count()));
  const auto burst = static_cast<double>(std::max(1, options_.report_burst));
  double tokens = old.report_tokens < 0 ? burst : old.report_tokens;
  tokens = std::min(burst, tokens + static_cast<double>(t - old.report_at) / interval);
  old.report_at = t;
  if (tokens < 1) {
    old.report_tokens = tokens;
    return Error(CoordinatorError::rate_limited,
                 "node " + old.name + " reports more often than " +
                     std::to_string(options_.report_burst) + " at once and one every " +
                     std::to_string(options_.report_interval.count()) + " s");
  }
  old.report_tokens = tokens - 1;
  // A machine waiting for an operator stays discovered whatever its agent says.
  const std::string new_state = old.state == "discovered" ? old.state : std::string(state);
  const std::string peer_address = reported_peer.value_or(old.peer_address);
  std::string protection = old.key_protection;
  if (const auto* v = facts.if_contains("key_protection"); v && v->is_string())
    protection = std::string(v->as_string()).substr(0, 32);
  const bool state_changed = new_state != old.state;
  const bool peer_changed = peer_address != old.peer_address;

  const std::vector<shared::protocol::CheckResult> new_checks = checks.value_or(old.checks);
  const boost::json::object new_config_run = config_run.value_or(old.config_run);
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  LAB_TRY(store_->run(
      "UPDATE nodes SET state = ?, facts = ?, last_seen = ?, peer_address = ?, "
      "key_protection = ?, checks = ?, config_run = ? WHERE id = ?",
      new_state, boost::json::serialize(facts), t, peer_address, protection,
      check_results_to_json(new_checks), boost::json::serialize(new_config_run), old.id));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  LAB_TRY(append_audit(
      *store_, {t, Actor{"node:" + old.id, {}}, "node.report", old.id, {{"state", new_state}}}));
  // The node's own view: its state, and its key protection decides entitlements (secrets
  // that require a TPM).
  Dirty dirty = Dirty::node(old.id);
  if (peer_changed || (state_changed && !peer_address.empty()))
    dirty = ring_change(std::move(dirty), t);
  auto apply = [&] {
    NodeRecord& n = it->second;
    n.state = new_state;
    n.facts = facts;
    n.last_seen = t;
    n.peer_address = peer_address;
    n.key_protection = protection;
    n.checks = new_checks;
    n.config_run = new_config_run;
    refresh_machine(n);
  };
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, dirty, apply));
  lock.unlock();
  deliver(std::move(d));
  return {};
}

Dirty CoordinatorImpl::ring_change(Dirty dirty, std::int64_t t) {
  if (t - ring_published_at_ >= options_.peer_debounce.count()) {
    ring_published_at_ = t;
    ring_pending_ = false;
    return Dirty::everything();
  }
  ring_pending_ = true;  // maintain() publishes it once the debounce has passed
  return dirty;
}

// ---- MAC map (find_by_mac answers from memory, on any thread) --------------------------------

void CoordinatorImpl::refresh_machine(const NodeRecord& n) {
  const std::unique_lock lock(machines_mutex_);
  for (const auto& mac : n.macs)
    machines_[mac] = pxe::registry::Machine{n.id, n.name, n.state, n.labels};
}

void CoordinatorImpl::forget_machine(const std::string& mac) {
  const std::unique_lock lock(machines_mutex_);
  machines_.erase(mac);
}

std::optional<pxe::registry::Machine> CoordinatorImpl::find_by_mac(std::string_view mac) {
  std::string key(mac);
  std::transform(key.begin(), key.end(), key.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const std::shared_lock lock(machines_mutex_);
  if (auto it = machines_.find(key); it != machines_.end())
    return it->second;
  return std::nullopt;
}

}  // namespace lab::bootstrap::coordinator
