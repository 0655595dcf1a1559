// Secrets: encrypted at rest with the secrets key (AAD = name), delivered only as sealed boxes
// inside the bundles of entitled nodes, never returned to anyone in clear.
#include "bootstrap/coordinator/audit.hpp"
#include "bootstrap/coordinator/coordinator_impl.hpp"
#include "shared/crypto/aead.hpp"

namespace lab::bootstrap::coordinator {
namespace {

namespace cr = shared::crypto;
namespace lb = shared::labels;
namespace sq = shared::sqlite;

constexpr std::size_t kMaxSecretSize = std::size_t{64} * 1024;

Error no_secret(std::string_view name) {
  return {CoordinatorError::not_found, "no secret '" + std::string(name) + "'"};
}

}  // namespace

Result<SecretInfo> CoordinatorImpl::set_secret(std::string_view name, std::string_view value,
                                               std::optional<std::string> entitlement,
                                               const Actor& actor,
                                               std::optional<std::string> require) {
  LAB_TRY(check_name(shared::names::Kind::secret, name));
  if (require && !require->empty() && *require != "tpm" && *require != "tpm+pcr") {
    return Error(CoordinatorError::invalid_argument,
                 "require '" + *require + "': expected \"tpm\" or \"tpm+pcr\" (or empty: any)");
  }
  if (value.size() > kMaxSecretSize) {
    return Error(CoordinatorError::invalid_argument,
                 "secret '" + std::string(name) + "' is " + std::to_string(value.size()) +
                     " bytes, at most " + std::to_string(kMaxSecretSize) + " allowed");
  }
  std::optional<lb::Selector> selector;
  if (entitlement) {
    LAB_TRY_ASSIGN(selector, parse_optional_selector(*entitlement, "entitlement"));
  }
  auto wrapped = cr::wrap(identity_.secrets_key, cr::as_bytes(value), cr::as_bytes(name));
  if (!wrapped)
    return Error(CoordinatorError::store_failed, "encrypt secret: " + wrapped.error().message());

  Lock lock(state_mutex_);
  SecretRecord rec;
  if (auto it = model_.secrets.find(name); it != model_.secrets.end()) {
    rec = it->second;
  } else {
    rec.info.name = std::string(name);
  }
  if (entitlement) {
    rec.info.entitlement = selector ? selector->to_string() : std::string();
    rec.entitlement = selector;
  }
  if (require)
    rec.info.require = *require;
  const std::int64_t t = now();
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  rec.info.version = rev;
  rec.info.updated_at = t;
  rec.info.size = value.size();
  rec.wrapped = std::move(*wrapped);
  LAB_TRY(store_->run(
      "INSERT INTO secrets (name, value, entitlement, version, updated_at, size, require) "
      "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value, "
      "entitlement = excluded.entitlement, version = excluded.version, "
      "updated_at = excluded.updated_at, size = excluded.size, require = excluded.require",
      rec.info.name, sq::Blob{rec.wrapped}, rec.info.entitlement, rec.info.version,
      rec.info.updated_at, static_cast<std::int64_t>(rec.info.size), rec.info.require));
  LAB_TRY(append_audit(*store_, {t,
                                 actor,
                                 "secret.set",
                                 rec.info.name,
                                 {{"entitlement", rec.info.entitlement},
                                  {"require", rec.info.require},
                                  {"version", rec.info.version},
                                  {"size", static_cast<std::int64_t>(rec.info.size)}}}));
  SecretInfo info = rec.info;
  auto apply = [&] { model_.secrets[info.name] = std::move(rec); };
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, Dirty::everything(), apply));
  lock.unlock();
  deliver(std::move(d));
  return info;
}

Result<SecretInfo> CoordinatorImpl::grant_secret(std::string_view name,
                                                 std::string_view entitlement, const Actor& actor) {
  LAB_TRY_ASSIGN(auto selector, parse_optional_selector(entitlement, "entitlement"));
  const std::string text = selector ? selector->to_string() : std::string();
  Lock lock(state_mutex_);
  auto it = model_.secrets.find(name);
  if (it == model_.secrets.end())
    return no_secret(name);
  if (it->second.info.entitlement == text)
    return it->second.info;
  const std::int64_t t = now();
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  LAB_TRY(store_->run("UPDATE secrets SET entitlement = ? WHERE name = ?", text, name));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  LAB_TRY(append_audit(*store_,
                       {t, actor, "secret.grant", std::string(name), {{"entitlement", text}}}));
  auto apply = [&] {
    it->second.info.entitlement = text;
    it->second.entitlement = std::move(selector);
  };
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, Dirty::everything(), apply));
  SecretInfo info = it->second.info;
  lock.unlock();
  deliver(std::move(d));
  return info;
}

Result<std::vector<SecretInfo>> CoordinatorImpl::list_secrets() {
  const Lock lock(state_mutex_);
  std::vector<SecretInfo> out;
  for (const auto& [name, s] : model_.secrets)
    out.push_back(s.info);
  return out;
}

Result<void> CoordinatorImpl::delete_secret(std::string_view name, const Actor& actor) {
  Lock lock(state_mutex_);
  auto it = model_.secrets.find(name);
  if (it == model_.secrets.end())
    return no_secret(name);
  const std::int64_t t = now();
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  LAB_TRY(store_->run("DELETE FROM secrets WHERE name = ?", name));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  LAB_TRY(append_audit(*store_, {t, actor, "secret.delete", std::string(name), {}}));
  auto apply = [&] { model_.secrets.erase(it); };
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, Dirty::everything(), apply));
  lock.unlock();
  deliver(std::move(d));
  return {};
}

}  // namespace lab::bootstrap::coordinator
