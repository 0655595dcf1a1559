// Join and boot tokens: created once, shown once, stored as SHA-256 of the secret.
#include "bootstrap/coordinator/audit.hpp"
#include "bootstrap/coordinator/coordinator_impl.hpp"
#include "shared/crypto/encoding.hpp"
#include "shared/crypto/hash.hpp"
#include "shared/crypto/random.hpp"
#include "shared/net/ip.hpp"
#include "shared/net/mac.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace lab::bootstrap::coordinator {
namespace {

namespace cr = shared::crypto;
namespace lb = shared::labels;
namespace sq = shared::sqlite;
namespace proto = shared::protocol;

constexpr auto kMaxTokenTtl = std::chrono::hours(24 * 365);

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

Result<void> validate_labels(const lb::LabelSet& labels) {
  for (const auto& [k, v] : labels) {
    if (auto r = lb::validate_key(k); !r) {
      return Error(CoordinatorError::invalid_argument,
                   "label key '" + k + "': " + r.error().detail());
    }
    if (auto r = lb::validate_value(v); !r) {
      return Error(CoordinatorError::invalid_argument,
                   fmt::format("label '{}' value '{}': {}", k, v, r.error().detail()));
    }
  }
  return {};
}

Result<CreatedToken> CoordinatorImpl::create_token(const TokenSpec& spec, const Actor& actor) {
  Lock lock(state_mutex_);
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  LAB_TRY_ASSIGN(CreatedToken created, create_token_locked(spec, actor, std::nullopt));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, Dirty{}, nullptr));
  lock.unlock();
  deliver(std::move(d));
  return created;
}

Result<CreatedToken> CoordinatorImpl::create_token_locked(
    const TokenSpec& spec, const Actor& actor, const std::optional<proto::Token>& preset) {
  if (spec.kind != "join" && spec.kind != "boot") {
    return Error(CoordinatorError::invalid_argument,
                 "token kind '" + spec.kind + "': expected \"join\" or \"boot\"");
  }
  if (spec.ttl <= std::chrono::seconds::zero() || spec.ttl > kMaxTokenTtl) {
    return Error(
        CoordinatorError::invalid_argument,
        "token ttl " + std::to_string(spec.ttl.count()) + "s: must be positive and at most a year");
  }
  LAB_TRY(validate_labels(spec.labels));
  // A binding no machine can meet would make a token nobody can use; refused as the CLI does.
  std::string bind_mac;
  if (!spec.binding.mac.empty()) {
    auto mac = shared::net::normalize_mac(spec.binding.mac);
    if (!mac) {
      return Error(CoordinatorError::invalid_argument,
                   "bind.mac '" + spec.binding.mac + "' is not a MAC address");
    }
    bind_mac = std::move(*mac);
  }
  if (!spec.binding.ip.empty() && !shared::net::is_ip_literal(spec.binding.ip)) {
    return Error(CoordinatorError::invalid_argument,
                 "bind.ip '" + spec.binding.ip + "' is not an IP address");
  }
  std::optional<proto::Token> token = preset;
  if (!token) {
    auto made = proto::make_token();
    if (!made)
      return Error(CoordinatorError::store_failed, "token: " + made.error().message());
    token = std::move(*made);
  }
  const cr::Digest hash = cr::sha256(token->secret);

  TokenInfo info;
  info.id = token->id;
  info.kind = spec.kind;
  info.labels = spec.labels;
  info.binding = {bind_mac, spec.binding.ip, spec.binding.host};
  info.description = spec.description;
  info.created_at = now();
  info.expires_at = info.created_at + spec.ttl.count();
  info.state = "active";

  LAB_TRY(store_->run(
      "INSERT INTO tokens (id, kind, secret_sha256, labels, bind_mac, bind_ip, bind_host, "
      "description, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      info.id, info.kind, sq::Blob{hash}, labels_to_json(info.labels), info.binding.mac,
      info.binding.ip, info.binding.host, info.description, info.created_at, info.expires_at));
  boost::json::object detail{{"kind", info.kind},
                             {"labels", lb::format_list(info.labels)},
                             {"expires_at", info.expires_at}};
  if (!info.binding.mac.empty())
    detail["bind_mac"] = info.binding.mac;
  if (!info.binding.ip.empty())
    detail["bind_ip"] = info.binding.ip;
  if (!info.binding.host.empty())
    detail["bind_host"] = info.binding.host;
  LAB_TRY(append_audit(*store_, {info.created_at, actor, "token.create", info.id, detail}));

  CreatedToken created;
  created.token = token->to_string();
  created.join_string = proto::format_join_string({options_.advertised_url, *token, ca_pin()});
  created.info = std::move(info);
  return created;
}

Result<std::vector<TokenInfo>> CoordinatorImpl::list_tokens() {
  const Lock lock(state_mutex_);
  LAB_TRY_ASSIGN(sq::Statement * st,
                 store_->query("SELECT id, kind, labels, bind_mac, bind_ip, bind_host, "
                               "description, created_at, expires_at, revoked_at, used_at, used_by "
                               "FROM tokens ORDER BY created_at, id"));
  const std::int64_t t = now();
  std::vector<TokenInfo> out;
  for (;;) {
    LAB_TRY_ASSIGN(bool row, Store::step(*st));
    if (!row)
      break;
    TokenInfo info;
    info.id = st->text(0);
    info.kind = st->text(1);
    info.labels = labels_from_json(st->text(2));
    info.binding = {st->text(3), st->text(4), st->text(5)};
    info.description = st->text(6);
    info.created_at = st->int64(7);
    info.expires_at = st->int64(8);
    info.used_by = st->optional_text(11).value_or("");
    if (!st->is_null(9))
      info.state = "revoked";
    else if (!st->is_null(10))
      info.state = "used";
    else if (t >= info.expires_at)
      info.state = "expired";
    else
      info.state = "active";
    out.push_back(std::move(info));
  }
  return out;
}

Result<void> CoordinatorImpl::revoke_token(std::string_view id, const Actor& actor) {
  Lock lock(state_mutex_);
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  LAB_TRY_ASSIGN(sq::Statement * st,
                 store_->query("SELECT revoked_at FROM tokens WHERE id = ?", id));
  LAB_TRY_ASSIGN(bool row, Store::step(*st));
  const bool already = row && !st->is_null(0);
  st->reset();
  if (!row)
    return Error(CoordinatorError::not_found, "no token '" + std::string(id) + "'");
  if (already)
    return {};
  const std::int64_t t = now();
  LAB_TRY(store_->run("UPDATE tokens SET revoked_at = ? WHERE id = ?", t, id));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  LAB_TRY(append_audit(*store_, {t, actor, "token.revoke", std::string(id), {}}));
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, Dirty{}, nullptr));
  lock.unlock();
  deliver(std::move(d));
  return {};
}

proto::Token CoordinatorImpl::boot_token(std::string id) const {
  const std::string input = "lab-boot-token-v1|" + id;
  const cr::Digest secret = cr::hmac_sha256(boot_token_key_, cr::as_bytes(input));
  return proto::Token{std::move(id), cr::base64url_encode(secret)};
}

std::optional<std::string> CoordinatorImpl::registered_ip(std::string_view mac) {
  const std::shared_lock lock(machines_mutex_);
  if (auto it = registered_.find(lower(mac)); it != registered_.end())
    return it->second;
  return std::nullopt;
}

Result<pxe::registry::BootToken> CoordinatorImpl::mint_boot_token(std::string_view mac_text,
                                                                  std::string_view ip,
                                                                  std::chrono::seconds ttl) {
  const auto mac = canonical_mac(mac_text);
  if (!mac) {
    return Error(CoordinatorError::invalid_argument,
                 "boot token: '" + std::string(mac_text) + "' is not a MAC address");
  }
  if (!valid_ip(ip)) {
    return Error(CoordinatorError::no_lease,
                 "boot token for " + *mac + ": no leased or registered address to bind it to");
  }
  auto to_boot_token = [&](const proto::Token& t, std::int64_t expires_at) {
    pxe::registry::BootToken out;
    out.token = t.to_string();
    out.join_string = proto::format_join_string({options_.advertised_url, t, ca_pin()});
    out.expires_at = std::chrono::system_clock::time_point(std::chrono::seconds(expires_at));
    return out;
  };
  Lock lock(state_mutex_);
  const std::int64_t t = now();
  // A repeated script request gets the live token again, while at least half its lifetime is
  // left; a token for another address (a new lease) is revoked when its successor is made.
  LAB_TRY_ASSIGN(sq::Statement * st,
                 store_->query("SELECT id, bind_ip, expires_at, created_at FROM tokens "
                               "WHERE kind = 'boot' AND bind_mac = ? AND used_at IS NULL "
                               "AND revoked_at IS NULL AND expires_at > ?",
                               *mac, t));
  std::vector<std::string> stale;
  for (;;) {
    LAB_TRY_ASSIGN(bool row, Store::step(*st));
    if (!row)
      break;
    const std::int64_t expires = st->int64(2);
    const std::int64_t created = st->int64(3);
    if (st->text(1) == ip && 2 * (expires - t) >= expires - created) {
      auto reused = to_boot_token(boot_token(st->text(0)), expires);
      st->reset();
      return reused;
    }
    stale.push_back(st->text(0));
  }
  st->reset();
  LAB_TRY_ASSIGN(auto id, [] {
    auto r = cr::random_bytes(8);
    return r ? Result<std::string>(cr::hex_encode(*r))
             : Result<std::string>(Error(CoordinatorError::store_failed, r.error().message()));
  }());
  const proto::Token token = boot_token(std::move(id));
  TokenSpec spec;
  spec.kind = "boot";
  spec.ttl = ttl;
  spec.binding.mac = *mac;
  spec.binding.ip = std::string(ip);
  spec.description = "boot of " + *mac;
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  for (const auto& old : stale)
    LAB_TRY(store_->run("UPDATE tokens SET revoked_at = ? WHERE id = ?", t, old));
  LAB_TRY_ASSIGN(CreatedToken created,
                 create_token_locked(spec, Actor{"system", std::string(ip)}, token));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, Dirty{}, nullptr));
  lock.unlock();
  deliver(std::move(d));
  return to_boot_token(token, created.info.expires_at);
}

}  // namespace lab::bootstrap::coordinator
