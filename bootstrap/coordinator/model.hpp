#pragma once
// The coordinator's state held in memory, loaded from the store at start and changed only
// after the transaction that changes the store has committed. Views, group memberships and
// find_by_mac are computed from it without touching SQLite.
#include "bootstrap/coordinator/coordinator.hpp"
#include "bootstrap/coordinator/store.hpp"
#include "shared/crypto/bytes.hpp"
#include "shared/labels/selector.hpp"

#include <boost/json/object.hpp>

#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace lab::bootstrap::coordinator {

struct NodeRecord {
  std::string id;
  std::string name;
  std::string state;
  std::vector<std::string> macs;
  shared::labels::LabelSet labels;
  boost::json::object facts;
  std::int64_t created_at = 0;
  std::int64_t last_seen = 0;
  std::string agent_version;
  std::string sealing_key;   // base64url X25519 public key
  std::string peer_address;  // "10.0.0.7:8444" or empty
  std::string cert_serial;
  std::int64_t cert_expires_at = 0;
};

struct CertRecord {
  std::string node_id;
  std::int64_t expires_at = 0;
  bool revoked = false;
};

struct GroupRecord {
  GroupInfo info;
  std::optional<shared::labels::Selector> selector;  // nullopt: no direct members
};

struct SecretRecord {
  SecretInfo info;
  std::optional<shared::labels::Selector> entitlement;  // nullopt: nobody
  shared::crypto::Bytes wrapped;                        // crypto::wrap(secrets key, value, name)
};

struct Model {
  std::map<std::string, NodeRecord, std::less<>> nodes;  // by id
  std::unordered_map<std::string, std::string> id_by_name;
  std::unordered_map<std::string, std::string> id_by_mac;
  std::unordered_map<std::string, CertRecord> certs;  // by serial
  std::map<std::string, GroupRecord, std::less<>> groups;
  std::map<std::string, SecretRecord, std::less<>> secrets;

  [[nodiscard]] const NodeRecord* find(std::string_view id_or_name) const;
  /// Serials of revoked certificates that have not expired at `now`, sorted.
  [[nodiscard]] std::vector<std::string> revoked_serials(std::int64_t now) const;
};

/// Reads every table the model mirrors.
Result<Model> load_model(Store& store);

/// States in which a node takes part in the fleet: receives secrets and is offered as a peer.
bool is_active_state(std::string_view state);

// JSON text forms of what the store keeps in TEXT columns.
std::string labels_to_json(const shared::labels::LabelSet& labels);
shared::labels::LabelSet labels_from_json(std::string_view text);
std::string strings_to_json(const std::vector<std::string>& v);
std::vector<std::string> strings_from_json(std::string_view text);

/// An empty selector text means "nobody" here (groups, entitlements), unlike the Kubernetes
/// empty selector that matches everything; a syntax error becomes invalid_argument naming it.
Result<std::optional<shared::labels::Selector>> parse_optional_selector(std::string_view text,
                                                                        std::string_view what);

/// Label keys and values checked by the Kubernetes rules; invalid_argument names the label.
Result<void> validate_labels(const shared::labels::LabelSet& labels);

/// MACs a node reports: facts["nics"][i]["mac"] and facts["macs"][i], lower case, deduplicated.
std::vector<std::string> macs_from_facts(const boost::json::object& facts);

}  // namespace lab::bootstrap::coordinator
