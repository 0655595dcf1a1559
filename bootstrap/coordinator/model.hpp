#pragma once
// The coordinator's state held in memory, loaded from the store at start and changed only
// after the transaction that changes the store has committed. Views, group memberships and
// find_by_mac are computed from it without touching SQLite.
#include "bootstrap/coordinator/coordinator.hpp"
#include "bootstrap/coordinator/store.hpp"
#include "shared/crypto/bytes.hpp"
#include "shared/labels/selector.hpp"
#include "shared/names/names.hpp"
#include "shared/protocol/checks.hpp"

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
  bool reinstall_armed = false;
  std::string key_protection;
  /// The health checks' states the agent last reported, by name.
  std::vector<shared::protocol::CheckResult> checks;
  /// The agent's last configuration-management run summary (OpenVox/Puppet), {} when none.
  boost::json::object config_run;
  /// Unrevoked certificates of this node other than cert_serial: a renewal's predecessors,
  /// revoked once the agent presents the new one.
  std::vector<std::string> superseded;
  // Report rate (memory only): tokens left and when they were last counted.
  double report_tokens = -1;  // < 0: full
  std::int64_t report_at = 0;
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

struct CheckRecord {
  CheckInfo info;
  std::optional<shared::labels::Selector> selector;  // nullopt: no node
};

struct SecretRecord {
  SecretInfo info;
  std::optional<shared::labels::Selector> entitlement;  // nullopt: nobody
  shared::crypto::Bytes wrapped;                        // crypto::wrap(secrets key, value, name)
};

struct MachineRecord {
  std::string ip;
  std::string description;
  std::int64_t registered_at = 0;
};

struct OperatorRecord {
  std::string name;
  shared::crypto::Bytes token_sha256;
  std::int64_t created_at = 0;
  std::int64_t expires_at = 0;  // 0: never
  bool revoked = false;
  std::string created_by;
};

struct Model {
  std::map<std::string, NodeRecord, std::less<>> nodes;  // by id
  std::unordered_map<std::string, std::string> id_by_name;
  std::unordered_map<std::string, std::string> id_by_mac;
  std::unordered_map<std::string, CertRecord> certs;  // by serial
  std::map<std::string, GroupRecord, std::less<>> groups;
  std::map<std::string, SecretRecord, std::less<>> secrets;
  std::map<std::string, CheckRecord, std::less<>> checks;
  std::map<std::string, MachineRecord, std::less<>> machines;     // by MAC
  std::map<std::string, OperatorRecord, std::less<>> operators;   // by name
  std::unordered_map<std::string, std::string> operator_by_hash;  // hex SHA-256 → name

  [[nodiscard]] const NodeRecord* find(std::string_view id_or_name) const;
  /// Serials of revoked certificates that have not expired at `now`, sorted.
  [[nodiscard]] std::vector<std::string> revoked_serials(std::int64_t now) const;
};

/// Reads every table the model mirrors.
Result<Model> load_model(Store& store);

/// The shared name rule (shared/names), as the coordinator's invalid_argument.
Result<void> check_name(shared::names::Kind kind, std::string_view name);

/// States in which a node takes part in the fleet: receives secrets and is offered as a peer.
bool is_active_state(std::string_view state);

// JSON text forms of what the store keeps in TEXT columns.
std::string labels_to_json(const shared::labels::LabelSet& labels);
shared::labels::LabelSet labels_from_json(std::string_view text);
std::string strings_to_json(const std::vector<std::string>& v);
std::vector<std::string> strings_from_json(std::string_view text);
std::string check_results_to_json(const std::vector<shared::protocol::CheckResult>& results);
std::vector<shared::protocol::CheckResult> check_results_from_json(std::string_view text);

/// An empty selector text means "nobody" here (groups, entitlements), unlike the Kubernetes
/// empty selector that matches everything; a syntax error becomes invalid_argument naming it.
Result<std::optional<shared::labels::Selector>> parse_optional_selector(std::string_view text,
                                                                        std::string_view what);

/// Label keys and values checked by the Kubernetes rules; invalid_argument names the label.
Result<void> validate_labels(const shared::labels::LabelSet& labels);

/// MACs a node reports: facts["nics"][i]["mac"] and facts["macs"][i], lower case, deduplicated.
std::vector<std::string> macs_from_facts(const boost::json::object& facts);

/// An IPv4 or IPv6 address literal.
bool valid_ip(std::string_view text);

/// "10.0.0.7:8444" or "[fd00::7]:8444": an IP literal and a port 1-65535, nothing else (no
/// host names: a peer address is dialled by every peer, so it must not resolve elsewhere).
bool valid_peer_address(std::string_view text);

/// "52:54:00:12:34:56" from any case of that form; nullopt otherwise.
std::optional<std::string> canonical_mac(std::string_view text);

/// Whether `protection` (what a node reports) meets `require` ("", "tpm", "tpm+pcr").
bool protection_meets(std::string_view protection, std::string_view require);

}  // namespace lab::bootstrap::coordinator
