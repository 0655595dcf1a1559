#pragma once
// The Coordinator behind its interface. One mutex (state_mutex_) serialises every change:
// it guards the store connection, the in-memory model and the unpublished views. Each change
// is one IMMEDIATE transaction that also bumps the revision and appends its audit row; the
// model changes only once that transaction has committed; then the views it may have changed
// are rebuilt, the changed ones signed and published, and the watches they satisfy called
// after the mutex is released. Readers that answer from memory (bundle, watch, find_by_mac,
// revision) take only their own short locks.
#include "bootstrap/coordinator/audit.hpp"
#include "bootstrap/coordinator/coordinator.hpp"
#include "bootstrap/coordinator/identity.hpp"
#include "bootstrap/coordinator/model.hpp"
#include "bootstrap/coordinator/store.hpp"
#include "bootstrap/coordinator/watch.hpp"

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

namespace lab::bootstrap::coordinator {

/// Which views a committed change may have altered.
struct Dirty {
  bool all = false;
  std::vector<std::string> nodes;
  static Dirty everything() { return {true, {}}; }
  static Dirty node(std::string id) { return {false, {std::move(id)}}; }
};

/// A node's view that changed, built under the state mutex; signed after it is released.
struct PendingView {
  std::string node_id;
  shared::protocol::Bundle view;
};

/// What a committed change owes the watches, done after the state mutex is released:
/// calls (revocations) and views to sign and publish, in chunks, each chunk's watches
/// woken as soon as it is signed.
struct Deliveries {
  std::vector<std::function<void()>> calls;
  std::vector<PendingView> views;
  std::optional<shared::protocol::Fleet> fleet;  // to sign and publish when it changed
};

class CoordinatorImpl final : public Coordinator {
 public:
  CoordinatorImpl(Options options, std::unique_ptr<Store> store, Identity identity, Model model,
                  std::int64_t revision, std::optional<shared::labels::Selector> auto_accept);
  CoordinatorImpl(const CoordinatorImpl&) = delete;
  CoordinatorImpl& operator=(const CoordinatorImpl&) = delete;
  /// Writes the refusals still waiting for their audit row.
  ~CoordinatorImpl() override;

  /// Builds and signs every view once at start.
  Result<void> start();

  // Registry.
  std::optional<pxe::registry::Machine> find_by_mac(std::string_view mac) override;
  std::optional<std::string> registered_ip(std::string_view mac) override;
  Result<pxe::registry::BootToken> mint_boot_token(std::string_view mac, std::string_view ip,
                                                   std::chrono::seconds ttl) override;

  // Identity.
  [[nodiscard]] std::string ca_pem() const override;
  [[nodiscard]] std::string ca_pin() const override;
  [[nodiscard]] std::string server_chain_pem() const override;
  [[nodiscard]] std::string server_key_pem() const override;
  [[nodiscard]] std::string bundle_public_key() const override;
  Result<std::string> authenticate_operator(std::string_view token) override;
  Result<AgentIdentity> identify_agent(std::string_view client_cert_der) override;
  Result<AgentIdentity> identify_verified_agent(const VerifiedClientCert& cert) override;
  [[nodiscard]] std::int64_t revision() const override;

  // Tokens (tokens.cpp).
  Result<CreatedToken> create_token(const TokenSpec& spec, const Actor& actor) override;
  Result<std::vector<TokenInfo>> list_tokens() override;
  Result<void> revoke_token(std::string_view id, const Actor& actor) override;

  // Join and nodes (join.cpp, nodes.cpp).
  Result<shared::protocol::JoinResponse> join(const shared::protocol::JoinRequest& request,
                                              const Actor& actor) override;
  Result<shared::protocol::RenewResponse> renew(const AgentIdentity& agent,
                                                const shared::protocol::RenewRequest& r) override;
  Result<shared::protocol::RenewResponse> renew_with_proof(const shared::protocol::RenewRequest& r,
                                                           const Actor& actor) override;
  Result<std::vector<NodeInfo>> list_nodes(std::string_view selector) override;
  Result<NodeInfo> get_node(std::string_view id_or_name) override;
  using Coordinator::label_node;
  Result<NodeInfo> label_node(std::string_view id_or_name, const shared::labels::LabelSet& set,
                              const std::vector<std::string>& remove, const Actor& actor,
                              Overwrite overwrite) override;
  Result<void> revoke_node(std::string_view id_or_name, const Actor& actor) override;
  Result<void> delete_node(std::string_view id_or_name, const Actor& actor) override;
  Result<NodeInfo> accept_node(std::string_view id_or_name, const Actor& actor) override;
  Result<NodeInfo> reinstall_node(std::string_view id_or_name, const Actor& actor) override;
  Result<NodeInfo> set_node_macs(std::string_view id_or_name, const std::vector<std::string>& add,
                                 const std::vector<std::string>& remove,
                                 const Actor& actor) override;
  Result<void> report(const AgentIdentity& agent, std::string_view state,
                      const boost::json::object& facts) override;

  // Machines and operators (machines.cpp, operators.cpp).
  Result<MachineInfo> register_machine(std::string_view mac, std::string_view ip,
                                       std::string_view description, const Actor& actor) override;
  Result<std::vector<MachineInfo>> list_machines() override;
  Result<void> unregister_machine(std::string_view mac, const Actor& actor) override;
  Result<CreatedOperator> add_operator(std::string_view name, std::chrono::seconds ttl,
                                       const Actor& actor) override;
  Result<std::vector<OperatorInfo>> list_operators() override;
  Result<void> revoke_operator(std::string_view name, const Actor& actor) override;

  // Housekeeping (maintain.cpp).
  void maintain() override;

  // Groups (groups.cpp).
  Result<GroupInfo> set_group(const GroupInfo& group, const Actor& actor) override;
  Result<std::vector<GroupInfo>> list_groups() override;
  Result<std::vector<NodeInfo>> group_members(std::string_view name) override;
  Result<void> delete_group(std::string_view name, const Actor& actor) override;

  // Health checks (checks.cpp).
  Result<CheckInfo> set_check(const CheckInfo& check, const Actor& actor) override;
  Result<std::vector<CheckInfo>> list_checks() override;
  Result<void> delete_check(std::string_view name, const Actor& actor) override;

  // Secrets (secrets.cpp).
  Result<SecretInfo> set_secret(std::string_view name, std::string_view value,
                                std::optional<std::string> entitlement, const Actor& actor,
                                std::optional<std::string> require) override;
  using Coordinator::set_secret;
  Result<SecretInfo> grant_secret(std::string_view name, std::string_view entitlement,
                                  const Actor& actor) override;
  Result<std::vector<SecretInfo>> list_secrets() override;
  Result<void> delete_secret(std::string_view name, const Actor& actor) override;

  // Audit.
  Result<std::vector<AuditEvent>> audit_events(std::int64_t after_seq, std::size_t limit) override;
  Result<AuditCheck> verify_audit() override;
  Result<audit::SignedHead> audit_head() override;
  /// append_audit (audit.hpp) with the bundle key, which signs the new head. Every change
  /// records itself through this member: its name hides the free function, which cannot be
  /// called without the key.
  Result<void> append_audit(Store& store, const AuditEntry& entry);

  // Bundles (bundles.cpp).
  Result<SignedBundle> bundle(const AgentIdentity& agent) override;
  std::unique_ptr<Watch> watch(std::string_view node_id, std::int64_t since,
                               std::optional<std::int64_t> kept_since,
                               std::function<void(SignedBundle)> changed) override;
  std::int64_t kept_revision(std::string_view node_id) override;
  shared::protocol::Kept kept(const AgentIdentity& agent, std::int64_t since) override;
  SignedBundle fleet() override;

 private:
  using Lock = std::unique_lock<std::mutex>;

  [[nodiscard]] std::int64_t now() const;
  [[nodiscard]] NodeInfo node_info(const NodeRecord& n) const;

  /// Commits `tx`; only then runs `apply` (the in-memory side of the change), records the
  /// new revision and rebuilds the views `dirty` names. Returns the deliveries owed; the
  /// caller runs them after unlocking.
  Result<Deliveries> commit(shared::sqlite::Transaction& tx, std::int64_t revision,
                            const Dirty& dirty, const std::function<void()>& apply);
  /// Rebuilds views (state mutex held) and returns the changed ones, for deliver().
  Deliveries rebuild_views(const Dirty& dirty);
  /// Signs and publishes the changed views and wakes their watches (state mutex not held).
  void deliver(Deliveries deliveries);

  /// Creates a token inside the caller's transaction (create_token, mint_boot_token); `preset`
  /// is the token to store (a boot token's derived secret), else a fresh random one.
  Result<CreatedToken> create_token_locked(const TokenSpec& spec, const Actor& actor,
                                           const std::optional<shared::protocol::Token>& preset);
  /// A boot token's secret, derived from its id: the same script request can show it again
  /// while only its SHA-256 is stored.
  [[nodiscard]] shared::protocol::Token boot_token(std::string id) const;

  /// Counts a refused request towards its caller's audit row for the current window (written
  /// by maintain(), never under the state mutex's fsync) and returns `refusal`.
  Error refuse(const Actor& actor, std::string_view action, std::string_view subject,
               const Error& refusal);
  /// Writes the refusal rows whose window has closed (all of them with `everything`).
  void flush_refusals(bool everything);

  /// The node a key proof names, when the proof holds: the signature verifies with the
  /// certificate's key over `message`, the certificate is ours, names the node, is not
  /// revoked, and expired at most renew_grace ago. proof_invalid for a bad signature;
  /// renew_grace_passed, node_revoked or certificate_invalid otherwise (state mutex held).
  Result<const NodeRecord*> check_proof(const shared::protocol::KeyProof& proof,
                                        std::string_view message);
  /// Revokes `serials` of node `id` inside the caller's transaction; the model side is
  /// returned to run after the commit.
  Result<std::function<void()>> revoke_serials(const std::string& id,
                                               const std::vector<std::string>& serials,
                                               std::int64_t t);
  Result<shared::crypto::Certificate> issue_client_cert(const std::string& node_id,
                                                        const shared::crypto::Bytes& spki);
  /// Updates the MAC → machine map used by find_by_mac after a node changed.
  void refresh_machine(const NodeRecord& n);
  /// Writes the agents' last-seen times gathered since the last call (state mutex held).
  void save_seen();
  /// A MAC that no longer belongs to any node.
  void forget_machine(const std::string& mac);
  /// `dirty`, or every view when a change of the ring of peers may be published now; else the
  /// change waits for maintain() (peer_debounce). State mutex held.
  Dirty ring_change(Dirty dirty, std::int64_t t);
  std::vector<std::string> groups_of(const shared::labels::LabelSet& labels) const;
  /// The checks whose selector matches these labels, by name (at most kMaxChecks).
  std::vector<shared::protocol::Check> checks_of(const shared::labels::LabelSet& labels) const;

  Options options_;
  std::unique_ptr<Store> store_;
  Identity identity_;
  std::optional<shared::labels::Selector> auto_accept_;

  std::mutex state_mutex_;
  Model model_;
  std::atomic<std::int64_t> revision_;

  // What each node's view was when last signed, and its sealed boxes by secret name.
  struct SealedBox {
    std::int64_t version = 0;
    std::string sealing_key;
    std::string sealed;
  };
  struct ViewState {
    shared::protocol::Bundle view;
    bool published = false;
    std::map<std::string, SealedBox, std::less<>> boxes;
  };
  std::unordered_map<std::string, ViewState> views_;   // guarded by state_mutex_
  std::optional<shared::protocol::Fleet> fleet_view_;  // the last fleet built; state_mutex_

  mutable std::shared_mutex machines_mutex_;
  std::unordered_map<std::string, pxe::registry::Machine> machines_;  // by MAC

  std::shared_ptr<WatchHub> hub_ = std::make_shared<WatchHub>(options_.clock);
  shared::crypto::SecretBytes boot_token_key_;  // HKDF of the secrets key

  std::unordered_map<std::string, std::string> registered_;  // MAC → IP; machines_mutex_

  // Refusals waiting for their audit row, by (caller address, action).
  struct Refusals {
    std::int64_t since = 0;  // start of the window
    std::int64_t count = 0;
    std::string actor;  // as the first refusal named the caller
    std::string first_reason;
    std::string first_detail;
    std::map<std::string, std::int64_t> reasons;
    std::vector<std::string> subjects;  // the first few token ids or nodes named
  };
  std::mutex refusals_mutex_;
  std::map<std::pair<std::string, std::string>, Refusals> refusals_;

  // A peer address change waiting to reach every bundle (state_mutex_).
  bool ring_pending_ = false;
  std::int64_t ring_published_at_ = 0;
  std::int64_t last_sweep_ = 0;
  std::int64_t last_seen_saved_ = 0;

  // Writers hold state_mutex_ too; authenticate_operator reads under this alone, so an operator
  // request never waits for a commit.
  mutable std::shared_mutex operators_mutex_;
};

}  // namespace lab::bootstrap::coordinator
