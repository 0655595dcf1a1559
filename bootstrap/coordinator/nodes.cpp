// Nodes: queries, labels, acceptance, revocation, agent reports and the MAC map.
#include "bootstrap/coordinator/audit.hpp"
#include "bootstrap/coordinator/coordinator_impl.hpp"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>

namespace lab::bootstrap::coordinator {
namespace {

namespace lb = shared::labels;

constexpr std::array kReportStates{"enrolled", "provisioning", "ready"};

Error no_node(std::string_view id_or_name) {
  return {CoordinatorError::not_found, "no node '" + std::string(id_or_name) + "'"};
}

}  // namespace

NodeInfo CoordinatorImpl::node_info(const NodeRecord& n) const {
  NodeInfo info;
  info.id = n.id;
  info.name = n.name;
  info.macs = n.macs;
  info.state = n.state;
  info.labels = n.labels;
  info.groups = groups_of(n.labels);
  info.facts = n.facts;
  info.created_at = n.created_at;
  info.last_seen = n.last_seen;
  info.agent_version = n.agent_version;
  info.cert_serial = n.cert_serial;
  info.cert_expires_at = n.cert_expires_at;
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
                                             const Actor& actor) {
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
                 commit(tx, rev, peer ? Dirty::everything() : Dirty::node(id), apply));
  NodeInfo info = node_info(model_.nodes[id]);
  lock.unlock();
  deliver(std::move(d));
  return info;
}

Result<void> CoordinatorImpl::report(const AgentIdentity& agent, std::string_view state,
                                     const boost::json::object& facts) {
  if (std::find(kReportStates.begin(), kReportStates.end(), state) == kReportStates.end()) {
    return Error(CoordinatorError::invalid_argument,
                 "state '" + std::string(state) + "': expected enrolled, provisioning or ready");
  }
  Lock lock(state_mutex_);
  auto it = model_.nodes.find(agent.node_id);
  if (it == model_.nodes.end())
    return no_node(agent.node_id);
  const NodeRecord& old = it->second;
  if (old.state == "revoked")
    return Error(CoordinatorError::node_revoked, "node " + old.id + " is revoked");
  // A machine waiting for an operator stays discovered whatever its agent says.
  const std::string new_state = old.state == "discovered" ? old.state : std::string(state);
  const std::int64_t t = now();
  std::string peer_address = old.peer_address;
  if (const auto* v = facts.if_contains("peer_address"); v && v->is_string())
    peer_address = std::string(v->as_string()).substr(0, 300);
  std::vector<std::string> macs = macs_from_facts(facts);
  if (macs.empty())
    macs = old.macs;
  const bool state_changed = new_state != old.state;
  const bool peer_changed = peer_address != old.peer_address;

  LAB_TRY_ASSIGN(auto tx, store_->begin());
  LAB_TRY(store_->run(
      "UPDATE nodes SET state = ?, facts = ?, last_seen = ?, peer_address = ? WHERE id = ?",
      new_state, boost::json::serialize(facts), t, peer_address, old.id));
  for (const auto& mac : macs) {
    LAB_TRY(
        store_->run("INSERT INTO node_macs (mac, node_id) VALUES (?, ?) "
                    "ON CONFLICT (mac) DO UPDATE SET node_id = excluded.node_id",
                    mac, old.id));
  }
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  LAB_TRY(append_audit(
      *store_, {t, Actor{"node:" + old.id, {}}, "node.report", old.id, {{"state", new_state}}}));
  Dirty dirty = Dirty::node(old.id);
  if (peer_changed || (state_changed && !peer_address.empty()))
    dirty = Dirty::everything();
  auto apply = [&] {
    NodeRecord& n = it->second;
    n.state = new_state;
    n.facts = facts;
    n.last_seen = t;
    n.peer_address = peer_address;
    for (const auto& mac : macs) {
      auto& owner = model_.id_by_mac[mac];
      if (!owner.empty() && owner != n.id) {
        if (auto prev = model_.nodes.find(owner); prev != model_.nodes.end()) {
          std::erase(prev->second.macs, mac);
          refresh_machine(prev->second);
        }
      }
      owner = n.id;
      if (std::find(n.macs.begin(), n.macs.end(), mac) == n.macs.end())
        n.macs.push_back(mac);
    }
    std::sort(n.macs.begin(), n.macs.end());
    refresh_machine(n);
  };
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, dirty, apply));
  lock.unlock();
  deliver(std::move(d));
  return {};
}

// ---- MAC map (find_by_mac answers from memory, on any thread) --------------------------------

void CoordinatorImpl::refresh_machine(const NodeRecord& n) {
  // A MAC leaves a node only by moving to another one, whose refresh overwrites the entry.
  const std::unique_lock lock(machines_mutex_);
  for (const auto& mac : n.macs)
    machines_[mac] = pxe::registry::Machine{n.id, n.name, n.state, n.labels};
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
