// Operators: named credentials (`lab operator add`), stored as SHA-256 only, each with its own
// expiry and revocation, so the audit trail says which person did what. The credential made at
// first start (operator.token) is the initial admin.
#include "bootstrap/coordinator/audit.hpp"
#include "bootstrap/coordinator/coordinator_impl.hpp"
#include "shared/crypto/encoding.hpp"
#include "shared/crypto/hash.hpp"
#include "shared/crypto/random.hpp"

#include <cctype>

namespace lab::bootstrap::coordinator {
namespace {

namespace cr = shared::crypto;
namespace sq = shared::sqlite;

constexpr std::string_view kAdmin = "admin";
constexpr auto kMaxOperatorTtl = std::chrono::hours(24 * 365 * 10);

std::string format_utc(std::int64_t t) {
  const std::time_t tt = t;
  std::tm tm{};
  gmtime_r(&tt, &tm);
  std::array<char, 32> buf{};
  const std::size_t n = std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return {buf.data(), n};
}

}  // namespace

Result<std::string> CoordinatorImpl::authenticate_operator(std::string_view token) {
  const cr::Digest d = cr::sha256(token);
  if (cr::constant_time_equal(d, identity_.operator_token_sha256))
    return std::string(kAdmin);
  const std::int64_t t = now();
  // The table is keyed by the hash of a 256-bit random secret: a lookup by it tells a timing
  // observer nothing about any credential.
  const std::shared_lock lock(operators_mutex_);
  auto it = model_.operator_by_hash.find(cr::hex_encode(d));
  if (it == model_.operator_by_hash.end())
    return Error(CoordinatorError::operator_unknown, "operator credential not recognised");
  const OperatorRecord& op = model_.operators.at(it->second);
  if (op.revoked) {
    return Error(CoordinatorError::operator_revoked,
                 "the credential of operator '" + op.name + "' was revoked");
  }
  if (op.expires_at != 0 && t >= op.expires_at) {
    return Error(
        CoordinatorError::operator_expired,
        "the credential of operator '" + op.name + "' expired at " + format_utc(op.expires_at));
  }
  return op.name;
}

Result<CreatedOperator> CoordinatorImpl::add_operator(std::string_view name,
                                                      std::chrono::seconds ttl,
                                                      const Actor& actor) {
  LAB_TRY(check_name(shared::names::Kind::operator_name, name));
  if (name == kAdmin) {
    return Error(CoordinatorError::already_exists,
                 "'admin' is the credential in operator.token; choose another name");
  }
  if (ttl < std::chrono::seconds::zero() || ttl > kMaxOperatorTtl) {
    return Error(CoordinatorError::invalid_argument,
                 "operator ttl: must be positive and at most ten years (0: no expiry)");
  }
  auto secret = cr::random_bytes(32);
  if (!secret)
    return Error(CoordinatorError::store_failed, "operator token: " + secret.error().message());
  std::string token = "lab-op-" + cr::base64url_encode(*secret);
  const cr::Digest d = cr::sha256(token);
  Lock lock(state_mutex_);
  // A revoked name may be given again: the new credential replaces the revoked row (the
  // audit trail keeps both).
  const auto existing = model_.operators.find(name);
  const bool replaces = existing != model_.operators.end();
  if (replaces && !existing->second.revoked) {
    return Error(CoordinatorError::already_exists,
                 "operator '" + std::string(name) + "' exists; revoke it first to replace it");
  }
  const std::int64_t t = now();
  OperatorRecord rec;
  rec.name = std::string(name);
  rec.token_sha256.assign(d.begin(), d.end());
  rec.created_at = t;
  rec.expires_at = ttl.count() == 0 ? 0 : t + ttl.count();
  rec.created_by = actor.name;
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  if (replaces)
    LAB_TRY(store_->run("DELETE FROM operators WHERE name = ?", rec.name));
  LAB_TRY(store_->run(
      "INSERT INTO operators (name, token_sha256, created_at, expires_at, created_by) "
      "VALUES (?, ?, ?, ?, ?)",
      rec.name, sq::Blob{rec.token_sha256}, rec.created_at,
      rec.expires_at == 0 ? std::optional<std::int64_t>() : std::optional(rec.expires_at),
      rec.created_by));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  LAB_TRY(
      append_audit(*store_, {t,
                             actor,
                             "operator.add",
                             rec.name,
                             {{"expires_at", rec.expires_at}, {"replaces_revoked", replaces}}}));
  CreatedOperator out{
      OperatorInfo{rec.name, rec.created_at, rec.expires_at, "active", rec.created_by},
      std::move(token)};
  LAB_TRY_ASSIGN(Deliveries d2, commit(tx, rev, Dirty{}, [&] {
                   const std::unique_lock w(operators_mutex_);
                   if (replaces)
                     std::erase_if(model_.operator_by_hash,
                                   [&](const auto& kv) { return kv.second == rec.name; });
                   model_.operator_by_hash[cr::hex_encode(d)] = rec.name;
                   model_.operators[rec.name] = rec;
                 }));
  lock.unlock();
  deliver(std::move(d2));
  return out;
}

Result<std::vector<OperatorInfo>> CoordinatorImpl::list_operators() {
  const Lock lock(state_mutex_);
  const std::int64_t t = now();
  std::vector<OperatorInfo> out{{std::string(kAdmin), 0, 0, "active", "first start"}};
  for (const auto& [name, op] : model_.operators) {
    std::string state = op.revoked                                   ? "revoked"
                        : (op.expires_at != 0 && t >= op.expires_at) ? "expired"
                                                                     : "active";
    out.push_back({name, op.created_at, op.expires_at, std::move(state), op.created_by});
  }
  return out;
}

Result<void> CoordinatorImpl::revoke_operator(std::string_view name, const Actor& actor) {
  if (name == kAdmin) {
    return Error(CoordinatorError::invalid_argument,
                 "the admin credential is the file operator.token in the data directory; "
                 "replace that file and restart lab serve to change it");
  }
  Lock lock(state_mutex_);
  auto it = model_.operators.find(name);
  if (it == model_.operators.end())
    return Error(CoordinatorError::not_found, "no operator '" + std::string(name) + "'");
  if (it->second.revoked)
    return {};
  const std::int64_t t = now();
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  LAB_TRY(store_->run("UPDATE operators SET revoked_at = ? WHERE name = ?", t, name));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  LAB_TRY(append_audit(*store_, {t, actor, "operator.revoke", std::string(name), {}}));
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, Dirty{}, [&] {
                   const std::unique_lock w(operators_mutex_);
                   it->second.revoked = true;
                 }));
  lock.unlock();
  deliver(std::move(d));
  return {};
}

}  // namespace lab::bootstrap::coordinator
