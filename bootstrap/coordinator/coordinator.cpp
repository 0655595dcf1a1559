#include "bootstrap/coordinator/audit.hpp"
#include "bootstrap/coordinator/coordinator_impl.hpp"
#include "shared/crypto/encoding.hpp"
#include "shared/crypto/hash.hpp"

#include <sys/stat.h>

namespace lab::bootstrap::coordinator {
namespace {
namespace cr = shared::crypto;
namespace fs = std::filesystem;
}  // namespace

const boost::system::error_category& coordinator_category() noexcept {
  static const ErrorCategory<CoordinatorError> kCategory(
      "lab.coordinator", [](CoordinatorError e) noexcept -> const char* {
        switch (e) {
          case CoordinatorError::not_found:
            return "not found";
          case CoordinatorError::already_exists:
            return "already exists";
          case CoordinatorError::invalid_argument:
            return "invalid argument";
          case CoordinatorError::token_unknown:
            return "unknown token";
          case CoordinatorError::token_expired:
            return "token expired";
          case CoordinatorError::token_used:
            return "token already used";
          case CoordinatorError::token_revoked:
            return "token revoked";
          case CoordinatorError::token_binding:
            return "token bound to another machine";
          case CoordinatorError::node_revoked:
            return "node revoked";
          case CoordinatorError::certificate_invalid:
            return "invalid certificate";
          case CoordinatorError::group_cycle:
            return "group cycle";
          case CoordinatorError::store_failed:
            return "store failed";
          case CoordinatorError::proof_invalid:
            return "key proof does not verify";
          case CoordinatorError::renew_grace_passed:
            return "certificate expired past the renewal grace";
          case CoordinatorError::mac_owned:
            return "MAC belongs to another node";
          case CoordinatorError::no_lease:
            return "no DHCP lease or registration for this MAC";
          case CoordinatorError::rate_limited:
            return "too many requests";
          case CoordinatorError::operator_unknown:
            return "unknown operator credential";
          case CoordinatorError::operator_expired:
            return "operator credential expired";
          case CoordinatorError::operator_revoked:
            return "operator credential revoked";
          case CoordinatorError::node_active:
            return "node is not revoked";
          case CoordinatorError::label_exists:
            return "label already set";
        }
        return "coordinator error";
      });
  return kCategory;
}

Result<std::unique_ptr<Coordinator>> Coordinator::open(Options options) {
  if (!options.clock)
    options.clock = [] { return std::chrono::system_clock::now(); };
  if (options.data_dir.empty())
    return Error(CoordinatorError::invalid_argument, "data_dir is empty");
  std::error_code ec;
  fs::create_directories(options.data_dir, ec);
  if (ec) {
    return Error(CoordinatorError::store_failed,
                 "create " + options.data_dir.string() + ": " + ec.message());
  }
  auto selector = parse_optional_selector(options.auto_accept, "auto_accept");
  if (!selector)
    return selector.error();
  const fs::path db_path = options.data_dir / "coordinator.db";
  LAB_TRY_ASSIGN(auto store, Store::open(db_path));
  // Token hashes and wrapped secrets are nobody else's business either.
  for (const char* suffix : {"", "-wal", "-shm"})
    ::chmod((db_path.string() + suffix).c_str(), 0600);
  LAB_TRY_ASSIGN(Identity identity, load_or_create_identity(options, *store));
  const std::int64_t started =
      std::chrono::duration_cast<std::chrono::seconds>(options.clock().time_since_epoch()).count();
  LAB_TRY(
      start_audit_signing(*store, identity.bundle_key, options.data_dir / "audit.signed", started));
  LAB_TRY_ASSIGN(Model model, load_model(*store));
  LAB_TRY_ASSIGN(std::int64_t revision, store->revision());
  auto c =
      std::make_unique<CoordinatorImpl>(std::move(options), std::move(store), std::move(identity),
                                        std::move(model), revision, std::move(*selector));
  LAB_TRY(c->start());
  return std::unique_ptr<Coordinator>(std::move(c));
}

CoordinatorImpl::CoordinatorImpl(Options options, std::unique_ptr<Store> store, Identity identity,
                                 Model model, std::int64_t revision,
                                 std::optional<shared::labels::Selector> auto_accept)
    : options_(std::move(options)),
      store_(std::move(store)),
      identity_(std::move(identity)),
      auto_accept_(std::move(auto_accept)),
      model_(std::move(model)),
      revision_(revision) {
  // Boot tokens' secrets are derived from their ids with a key of their own, so the key that
  // encrypts secrets at rest is never used for anything else.
  static constexpr std::string_view kSalt = "lab";
  static constexpr std::string_view kInfo = "lab boot token key v1";
  boot_token_key_ =
      cr::hkdf_sha256(identity_.secrets_key, cr::as_bytes(kSalt), cr::as_bytes(kInfo), 32).value();
}

CoordinatorImpl::~CoordinatorImpl() {
  flush_refusals(true);
  const Lock lock(state_mutex_);
  save_seen();
}

Result<void> CoordinatorImpl::start() {
  Lock lock(state_mutex_);
  for (const auto& [id, node] : model_.nodes)
    refresh_machine(node);
  {
    const std::unique_lock w(machines_mutex_);
    for (const auto& [mac, m] : model_.machines)
      registered_[mac] = m.ip;
  }
  Deliveries d = rebuild_views(Dirty::everything());
  lock.unlock();
  deliver(std::move(d));
  return {};
}

std::int64_t CoordinatorImpl::now() const {
  return std::chrono::duration_cast<std::chrono::seconds>(options_.clock().time_since_epoch())
      .count();
}

// ---- Identity -------------------------------------------------------------------------------

std::string CoordinatorImpl::ca_pem() const {
  return identity_.ca_cert.pem();
}
std::string CoordinatorImpl::ca_pin() const {
  return identity_.ca_pin;
}
std::string CoordinatorImpl::server_chain_pem() const {
  return identity_.server_cert.pem() + identity_.ca_cert.pem();
}
std::string CoordinatorImpl::server_key_pem() const {
  return identity_.server_key.to_pem();
}
std::string CoordinatorImpl::bundle_public_key() const {
  const auto raw = identity_.bundle_key.public_key().raw();
  return cr::base64url_encode(raw);
}
std::int64_t CoordinatorImpl::revision() const {
  return revision_.load();
}

// ---- Commit ---------------------------------------------------------------------------------

Result<Deliveries> CoordinatorImpl::commit(shared::sqlite::Transaction& tx, std::int64_t revision,
                                           const Dirty& dirty, const std::function<void()>& apply) {
  if (auto r = tx.commit(); !r)
    return store_error(r.error());
  if (apply)
    apply();
  revision_.store(revision);
  return rebuild_views(dirty);
}

// ---- Audit ----------------------------------------------------------------------------------

Result<std::vector<AuditEvent>> CoordinatorImpl::audit_events(std::int64_t after_seq,
                                                              std::size_t limit) {
  const Lock lock(state_mutex_);
  return read_audit(*store_, after_seq, limit);
}

Result<AuditCheck> CoordinatorImpl::verify_audit() {
  const Lock lock(state_mutex_);
  return verify_audit_chain(*store_, identity_.bundle_key.public_key());
}

Result<audit::SignedHead> CoordinatorImpl::audit_head() {
  const Lock lock(state_mutex_);
  return read_audit_head(*store_);
}

Result<void> CoordinatorImpl::append_audit(Store& store, const AuditEntry& entry) {
  return coordinator::append_audit(store, entry, identity_.bundle_key);
}

}  // namespace lab::bootstrap::coordinator
