#pragma once
// The coordinator as the rest of the appliance sees it: the operator API, the agent API and the
// CLI call these methods; the HTTP layer only authenticates, decodes and encodes. Every method
// is synchronous and may write to the store: call it on the blocking pool, never on an
// io_context thread (except where a comment says it answers from memory).
#include "bootstrap/audit/chain.hpp"
#include "pxe/registry/registry.hpp"
#include "shared/errors/error.hpp"
#include "shared/labels/label.hpp"
#include "shared/protocol/protocol.hpp"

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lab::pxe::events {
class Sink;
}

namespace lab::bootstrap::coordinator {

/// One code per refusal, so logs and the audit trail say exactly why. The agent-facing API
/// never shows the token codes to the caller: it answers "invalid token".
enum class CoordinatorError {
  not_found = 1,     // no such node, token, group or secret
  already_exists,    // create of something that exists
  invalid_argument,  // bad label, selector, name, TTL…; detail names it
  token_unknown,     // no token with that id, or the secret does not match
  token_expired,
  token_used,
  token_revoked,
  token_binding,        // MAC, IP or hostname binding does not match the caller
  node_revoked,         // certificate serial or node revoked
  certificate_invalid,  // CSR that does not verify, or cert not issued by our CA
  group_cycle,          // detail names the cycle "a -> b -> a"
  store_failed,         // SQLite error; detail says which statement
  proof_invalid,        // a key proof whose signature does not verify
  renew_grace_passed,   // a certificate expired longer ago than the renewal grace
  mac_owned,            // a MAC that belongs to another node; detail names it
  no_lease,             // a boot token for a MAC without a DHCP lease or registration
  rate_limited,         // too many requests of this kind from this caller; retry later
  operator_unknown,     // an operator credential that matches none
  operator_expired,     // detail names the operator and when
  operator_revoked,     // detail names the operator
  node_active,          // a node that must be revoked first (delete_node)
  label_exists,         // a label patch would change a value without overwrite
};
const boost::system::error_category& coordinator_category() noexcept;
inline boost::system::error_code make_error_code(CoordinatorError e) noexcept {
  return {static_cast<int>(e), coordinator_category()};
}

using Clock = std::function<std::chrono::system_clock::time_point()>;

struct Options {
  std::filesystem::path data_dir;         // coordinator.db, ca.pem, ca.key, … (0600 keys)
  std::string advertised_url;             // "https://10.0.0.1:8443", put into join strings
  std::vector<std::string> server_names;  // SANs of the server certificate (IPs or DNS names)
  std::chrono::seconds certificate_ttl{std::chrono::hours(24 * 7)};
  Clock clock;  // defaults to system_clock::now
  /// Selector of machines that join with a boot token and are enrolled without an operator's
  /// `lab node accept`; empty accepts none (they stay "discovered").
  std::string auto_accept;
  /// A node's keepers: the next nodes after it on the ring of node ids (those with a peer
  /// address) hold its newest envelope and hand it back to it when the coordinator is out of
  /// reach. Its bundle lists them.
  std::size_t keepers = 3;
  /// Gossip partners beyond the keepers: ring fingers at distances 4, 8, 16, ..., so that the
  /// fleet envelope spreads in about log2(N) rounds while a bundle stays small.
  std::size_t gossip_partners = 16;
  /// The boot flight recorder. A join with a boot token bound to a MAC (and a refused one whose
  /// caller held the real token) is recorded there as agent_join for that MAC; null: not
  /// recorded. Must outlive the coordinator; called on the blocking pool.
  pxe::events::Sink* boot_events = nullptr;
  /// How long after its certificate expired a node may still renew by proving it holds the
  /// key (an offline node must not need a new token after a long trip).
  std::chrono::seconds renew_grace{std::chrono::hours(24 * 30)};
  /// Refused joins and renewals are audited as one row per caller address and window, written
  /// by maintain(): a flood of bad requests neither fsyncs per request nor grows the log per
  /// request.
  std::chrono::seconds refusal_window{60};
  /// A change of a node's peer address reaches the other nodes' bundles at most this often
  /// (each change re-signs every bundle and wakes every parked poll).
  std::chrono::seconds peer_debounce{30};
  /// An agent's reports: at most `report_burst` at once, then one per `report_interval`.
  std::chrono::seconds report_interval{10};
  int report_burst = 6;
  /// A node whose agent has no poll parked and has not polled for this long is shown
  /// `offline`, whatever it last reported.
  std::chrono::seconds offline_after{60};
};

/// Who did something, for the audit trail: an operator's name ("admin" for the credential
/// made at first start), "node:<id>", "system", "anonymous".
struct Actor {
  std::string name;
  std::string address;  // peer IP, when known
};

// ---- Tokens ---------------------------------------------------------------------------------

struct TokenBinding {
  std::string mac;  // lower-case "52:54:00:…", empty = any
  std::string ip;
  std::string host;  // hostname the joining node reports
};

struct TokenSpec {
  shared::labels::LabelSet labels;  // applied to the node on join
  std::chrono::seconds ttl{std::chrono::hours(1)};
  TokenBinding binding;
  std::string kind = "join";  // "join" (operator) or "boot" (minted per PXE boot)
  std::string description;
};

struct TokenInfo {
  std::string id;
  std::string kind;
  shared::labels::LabelSet labels;
  TokenBinding binding;
  std::string description;
  std::int64_t created_at = 0;  // unix seconds
  std::int64_t expires_at = 0;
  std::string state;    // "active", "used", "revoked", "expired"
  std::string used_by;  // node id once used
};

struct CreatedToken {
  TokenInfo info;
  std::string token;        // shown once; never stored in clear
  std::string join_string;  // shared::protocol::format_join_string
};

// ---- Nodes, groups, secrets, audit ----------------------------------------------------------

/// What an operator asks of a node, each pillar as one word to filter on (`lab node list
/// --where health=failing`); the details are in NodeInfo.
struct Pillars {
  /// current (its agent has polled the newest bundle), behind, offline, unknown (no poll since
  /// the coordinator started).
  std::string sync;
  /// none (no run summary reported), ok, failed (the last run had failures).
  std::string config;
  /// none (no checks), passing, failing (any check), pending (results still coming).
  std::string health;
  /// ok, degraded (keys in a file, not a TPM), expiring (certificate within a day of its end),
  /// expired, revoked.
  std::string identity;
};

struct NodeInfo {
  std::string id;
  std::string name;
  std::vector<std::string> macs;
  /// discovered, enrolled, provisioning, ready, revoked; `offline` in place of the last three
  /// when the agent missed its polls for Options::offline_after.
  std::string state;
  std::string reported_state;  // what the agent last reported (or the enrolment made it)
  bool polling = false;        // a poll of its agent is parked right now
  shared::labels::LabelSet labels;
  std::vector<std::string> groups;  // resolved memberships
  boost::json::object facts;
  std::int64_t created_at = 0;
  std::int64_t last_seen = 0;  // its agent's last poll, report or enrolment (unix seconds)
  std::string agent_version;
  std::string cert_serial;  // hex
  std::int64_t cert_expires_at = 0;
  std::string key_protection;    // as the agent reports it: "tpm", "tpm+pcr", "file"; "" unknown
  bool reinstall_armed = false;  // `lab node reinstall`: the next network boot re-enrols it
  /// The revision of the node's newest bundle, and the one its agent last polled with (it
  /// may have got newer ones from peers since); nullopt before its first poll since start.
  std::int64_t revision = 0;
  std::optional<std::int64_t> agent_revision;
  /// The health checks' states the agent last reported.
  std::vector<shared::protocol::CheckResult> checks;
  /// The agent's last configuration-management run summary ({} when it has none).
  boost::json::object config_run;
  Pillars pillars;
};

/// The pillars of a node from its other fields, at `now` (unix seconds).
Pillars pillars_of(const NodeInfo& node, std::int64_t now);

/// A machine an operator registered for network boot (`lab machine register`): boot tokens
/// are minted for its MAC, bound to this address, as for a MAC this appliance's DHCP leased.
struct MachineInfo {
  std::string mac;
  std::string ip;
  std::string description;
  std::int64_t registered_at = 0;
  std::string node_id;  // the node that owns the MAC, if any
};

/// A named operator credential (`lab operator add`).
struct OperatorInfo {
  std::string name;
  std::int64_t created_at = 0;
  std::int64_t expires_at = 0;  // 0: never
  std::string state;            // "active", "expired", "revoked"
  std::string created_by;
};
struct CreatedOperator {
  OperatorInfo info;
  std::string token;  // shown once
};

struct GroupInfo {
  std::string name;
  std::string selector;               // may be empty when the group is only includes
  std::vector<std::string> includes;  // members of these groups are members
  std::vector<std::string> excludes;  // members of these groups are not
};

/// A health check (shared/protocol/checks.hpp) and the label selector choosing its nodes.
struct CheckInfo {
  shared::protocol::Check check;
  std::string selector;  // empty runs it nowhere
};

struct SecretInfo {
  std::string name;
  std::string entitlement;   // selector; empty entitles nobody
  std::int64_t version = 0;  // revision of the last value change
  std::int64_t updated_at = 0;
  std::size_t size = 0;
  /// Key protection an entitled node must report: "" (any), "tpm" (tpm or tpm+pcr), "tpm+pcr".
  std::string require;
};

struct AuditEvent {
  std::int64_t seq = 0;
  std::int64_t at = 0;
  std::string actor;
  std::string address;
  std::string action;   // "token.create", "join", "join.refused", "node.label", …
  std::string subject;  // token id, node id, group or secret name
  boost::json::object detail;
  std::string hash;  // hex SHA-256 over the previous hash and this row's canonical form
};

struct AuditCheck {
  bool ok = true;
  std::int64_t rows = 0;
  std::int64_t first_bad_seq = 0;  // 0 when ok, or when the head's signature is what fails
  std::string reason;              // "row 17 modified", "row 18 missing", …
};

/// What an authenticated agent is: the node its certificate names.
struct AgentIdentity {
  std::string node_id;
  std::string cert_serial;
};

/// A client certificate the TLS listener verified against this coordinator's CA during the
/// handshake: what identifying its sender needs, without parsing or verifying it again.
struct VerifiedClientCert {
  std::string serial;  // lower-case hex, no leading zeros
  std::string common_name;
  std::chrono::system_clock::time_point not_after;
};

// ---- The coordinator ------------------------------------------------------------------------

class Coordinator : public pxe::registry::Registry {
 public:
  /// Opens (or on first start creates) the store, the CA (ECDSA P-256), the bundle signing key
  /// (Ed25519), the secrets key and the operator credential, all 0600 under data_dir.
  static Result<std::unique_ptr<Coordinator>> open(Options options);
  ~Coordinator() override = default;

  // Identity material for the TLS listener and for the CLI (answer from memory).
  [[nodiscard]] virtual std::string ca_pem() const = 0;
  [[nodiscard]] virtual std::string ca_pin() const = 0;            // "sha256:…"
  [[nodiscard]] virtual std::string server_chain_pem() const = 0;  // cert + CA
  [[nodiscard]] virtual std::string server_key_pem() const = 0;
  [[nodiscard]] virtual std::string bundle_public_key() const = 0;  // base64url Ed25519
  /// The operator a bearer token belongs to (tokens are stored as SHA-256 only):
  /// operator_unknown, operator_expired or operator_revoked otherwise, with a detail naming
  /// the operator where there is one. Answers from memory.
  virtual Result<std::string> authenticate_operator(std::string_view token) = 0;
  [[nodiscard]] bool check_operator_token(std::string_view token) {
    return static_cast<bool>(authenticate_operator(token));
  }
  /// The node a verified client certificate belongs to; refuses revoked serials and nodes.
  virtual Result<AgentIdentity> identify_agent(std::string_view client_cert_der) = 0;
  /// The same for a certificate the TLS layer verified: checks expiry, serial, node and
  /// revocation (every agent request does this; a parse and an ECDSA verify each would not do).
  virtual Result<AgentIdentity> identify_verified_agent(const VerifiedClientCert& cert) = 0;

  /// The current revision (answers from memory).
  [[nodiscard]] virtual std::int64_t revision() const = 0;

  // Tokens.
  virtual Result<CreatedToken> create_token(const TokenSpec& spec, const Actor& actor) = 0;
  virtual Result<std::vector<TokenInfo>> list_tokens() = 0;
  virtual Result<void> revoke_token(std::string_view id, const Actor& actor) = 0;

  // Join and renewal. `actor.address` is the caller's IP, checked against an IP binding.
  /// A join makes a new node unless the request carries a key proof of an existing node (its
  /// current certificate, or one expired less than renew_grace ago) or it uses a boot token
  /// for the MAC of a node an operator armed with reinstall_node(): then that node is enrolled
  /// again with the new keys and its old certificates are revoked. Facts the agent reports
  /// about itself (MACs, hostname) never make it an existing node.
  virtual Result<shared::protocol::JoinResponse> join(const shared::protocol::JoinRequest& request,
                                                      const Actor& actor) = 0;
  virtual Result<shared::protocol::RenewResponse> renew(
      const AgentIdentity& agent, const shared::protocol::RenewRequest& r) = 0;
  /// Renewal without a valid client certificate, by proof of the key of one that expired less
  /// than renew_grace ago (renew_grace_passed past it: the node must rejoin).
  virtual Result<shared::protocol::RenewResponse> renew_with_proof(
      const shared::protocol::RenewRequest& r, const Actor& actor) = 0;

  // Nodes.
  virtual Result<std::vector<NodeInfo>> list_nodes(std::string_view selector) = 0;
  virtual Result<NodeInfo> get_node(std::string_view id_or_name) = 0;
  /// Whether a label patch may give a key the node already has another value
  /// (`lab node label --overwrite`); without it that is node_label_exists.
  enum class Overwrite : bool { no, yes };
  virtual Result<NodeInfo> label_node(std::string_view id_or_name,
                                      const shared::labels::LabelSet& set,
                                      const std::vector<std::string>& remove, const Actor& actor,
                                      Overwrite overwrite) = 0;
  Result<NodeInfo> label_node(std::string_view id_or_name, const shared::labels::LabelSet& set,
                              const std::vector<std::string>& remove, const Actor& actor) {
    return label_node(id_or_name, set, remove, actor, Overwrite::yes);
  }
  virtual Result<void> revoke_node(std::string_view id_or_name, const Actor& actor) = 0;
  /// Forgets a revoked node: its row, name and MACs go (the name can be taken again); its
  /// certificates stay on record as revoked, so nothing it held is accepted again.
  /// node_active when it is not revoked.
  virtual Result<void> delete_node(std::string_view id_or_name, const Actor& actor) = 0;
  /// Moves a discovered node on to "enrolled" (`lab node accept`).
  virtual Result<NodeInfo> accept_node(std::string_view id_or_name, const Actor& actor) = 0;
  /// Arms one re-enrolment: the next join with a boot token for one of the node's MACs
  /// becomes this node again (`lab node reinstall`); the join disarms it.
  virtual Result<NodeInfo> reinstall_node(std::string_view id_or_name, const Actor& actor) = 0;
  /// Gives MACs to a node or takes them away (an operator's word, like DHCP's): mac_owned
  /// when one belongs to another node.
  virtual Result<NodeInfo> set_node_macs(std::string_view id_or_name,
                                         const std::vector<std::string>& add,
                                         const std::vector<std::string>& remove,
                                         const Actor& actor) = 0;
  /// An agent reports its state ("ready", "provisioning") and facts; updates last_seen.
  /// The MACs in its facts are kept as facts, never taken as the node's own. facts
  /// ["peer_address"] ("10.0.0.7:8444", an IP literal and a port), when present, is where
  /// peers reach this node's agent; facts["key_protection"] how its keys are kept.
  /// rate_limited past report_burst; invalid_argument for a malformed peer address.
  virtual Result<void> report(const AgentIdentity& agent, std::string_view state,
                              const boost::json::object& facts) = 0;

  // Machines registered for network boot.
  virtual Result<MachineInfo> register_machine(std::string_view mac, std::string_view ip,
                                               std::string_view description,
                                               const Actor& actor) = 0;
  virtual Result<std::vector<MachineInfo>> list_machines() = 0;
  virtual Result<void> unregister_machine(std::string_view mac, const Actor& actor) = 0;

  // Operators. The credential made at first start is "admin".
  virtual Result<CreatedOperator> add_operator(std::string_view name, std::chrono::seconds ttl,
                                               const Actor& actor) = 0;
  virtual Result<std::vector<OperatorInfo>> list_operators() = 0;
  virtual Result<void> revoke_operator(std::string_view name, const Actor& actor) = 0;

  /// Housekeeping, called about once a second by `lab serve` (on the blocking pool): writes
  /// the audit rows of refusals whose window has closed, deletes expired tokens, and
  /// publishes peer address changes held back by peer_debounce.
  virtual void maintain() = 0;

  // Groups. set_group refuses cycles through includes/excludes with group_cycle.
  virtual Result<GroupInfo> set_group(const GroupInfo& group, const Actor& actor) = 0;
  virtual Result<std::vector<GroupInfo>> list_groups() = 0;
  virtual Result<std::vector<NodeInfo>> group_members(std::string_view name) = 0;
  virtual Result<void> delete_group(std::string_view name, const Actor& actor) = 0;

  // Health checks: each reaches the nodes its selector matches in their bundles.
  virtual Result<CheckInfo> set_check(const CheckInfo& check, const Actor& actor) = 0;
  virtual Result<std::vector<CheckInfo>> list_checks() = 0;
  virtual Result<void> delete_check(std::string_view name, const Actor& actor) = 0;

  // Secrets: values are encrypted at rest and never returned to the operator.
  /// `require`: key protection an entitled node must report ("", "tpm", "tpm+pcr"); nullopt
  /// keeps what the secret had.
  virtual Result<SecretInfo> set_secret(std::string_view name, std::string_view value,
                                        std::optional<std::string> entitlement, const Actor& actor,
                                        std::optional<std::string> require) = 0;
  Result<SecretInfo> set_secret(std::string_view name, std::string_view value,
                                std::optional<std::string> entitlement, const Actor& actor) {
    return set_secret(name, value, std::move(entitlement), actor, std::nullopt);
  }
  virtual Result<SecretInfo> grant_secret(std::string_view name, std::string_view entitlement,
                                          const Actor& actor) = 0;
  virtual Result<std::vector<SecretInfo>> list_secrets() = 0;
  virtual Result<void> delete_secret(std::string_view name, const Actor& actor) = 0;

  // Audit.
  virtual Result<std::vector<AuditEvent>> audit_events(std::int64_t after_seq,
                                                       std::size_t limit) = 0;
  /// The chain, then the head's signature with the bundle key and that it names the last row.
  virtual Result<AuditCheck> verify_audit() = 0;
  /// The signed head as stored (for `lab audit export`); bundle_public_key() verifies it.
  virtual Result<audit::SignedHead> audit_head() = 0;

  // Bundles.
  /// The node's current signed bundle envelope and the revision at which its view last
  /// changed (answers from memory once built).
  struct SignedBundle {
    std::int64_t revision = 0;
    std::shared_ptr<const std::string> envelope;  // shared::envelope bytes
    /// Set (with no envelope) when a watch ends because the node was revoked.
    bool revoked = false;
    /// Set (with no envelope) when a watch that asked for kept envelopes ends because a node
    /// this one keeps has a newer envelope: fetch them with kept().
    bool kept_changed = false;
  };
  virtual Result<SignedBundle> bundle(const AgentIdentity& agent) = 0;

  /// Calls `changed` once, from any thread, as soon as the node's view moves past `since`
  /// (at once when it already has), or with SignedBundle::revoked once the node is revoked
  /// (at once when it already is). Returns a handle; destroying it cancels the watch, after
  /// which `changed` is not called. Costs no thread while parked.
  class Watch {
   public:
    virtual ~Watch() = default;
  };
  /// With `kept_since`, the watch also ends (SignedBundle::kept_changed) when a node this one
  /// keeps gets an envelope newer than it.
  virtual std::unique_ptr<Watch> watch(std::string_view node_id, std::int64_t since,
                                       std::optional<std::int64_t> kept_since,
                                       std::function<void(SignedBundle)> changed) = 0;

  // Peer sync.
  /// The newest revision among the envelopes of the nodes `node_id` keeps (0: it keeps none).
  virtual std::int64_t kept_revision(std::string_view node_id) = 0;
  /// The nodes this agent keeps, and the envelopes among theirs newer than `since`, verbatim.
  virtual shared::protocol::Kept kept(const AgentIdentity& agent, std::int64_t since) = 0;
  /// The newest signed fleet envelope (revision 0 and no envelope before the first).
  virtual SignedBundle fleet() = 0;
};

}  // namespace lab::bootstrap::coordinator

template <>
struct boost::system::is_error_code_enum<lab::bootstrap::coordinator::CoordinatorError>
    : std::true_type {};
