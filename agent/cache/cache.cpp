#include "agent/cache/cache.hpp"

#include "shared/crypto/encoding.hpp"
#include "shared/envelope/envelope.hpp"
#include "shared/json/json.hpp"
#include "shared/sqlite/database.hpp"

#include <boost/json/serialize.hpp>
#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <array>

namespace lab::agent::cache {
namespace {

namespace crypto = shared::crypto;
namespace sql = shared::sqlite;
namespace protocol = shared::protocol;

constexpr std::array kMigrations{
    sql::Migration{1,
                   "CREATE TABLE identity ("
                   "  id INTEGER PRIMARY KEY CHECK (id = 1),"
                   "  node_id TEXT NOT NULL, name TEXT NOT NULL, coordinator_url TEXT NOT NULL,"
                   "  certificate_pem TEXT NOT NULL, ca_pem TEXT NOT NULL,"
                   "  bundle_key TEXT NOT NULL, state TEXT NOT NULL,"
                   "  tls_key BLOB NOT NULL, sealing_key BLOB NOT NULL);"
                   "CREATE TABLE bundle ("
                   "  id INTEGER PRIMARY KEY CHECK (id = 1),"
                   "  revision INTEGER NOT NULL, issued_at INTEGER NOT NULL,"
                   "  state TEXT NOT NULL, name TEXT NOT NULL, envelope BLOB NOT NULL);"
                   "CREATE TABLE contact ("
                   "  id INTEGER PRIMARY KEY CHECK (id = 1), last_contact INTEGER NOT NULL);"
                   "CREATE TABLE labels (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
                   "CREATE TABLE groups (name TEXT PRIMARY KEY) WITHOUT ROWID;"
                   "CREATE TABLE secrets (name TEXT PRIMARY KEY, version INTEGER NOT NULL,"
                   "  sealed BLOB NOT NULL) WITHOUT ROWID;"},
    // Peer sync: the bundle's peer directory (keepers, gossip partners, revoked serials: the
    // bundle without labels and secrets), where the view came from, the newest fleet
    // envelope, and the envelopes this node keeps for others (wrapped like its own).
    sql::Migration{2,
                   "ALTER TABLE bundle ADD COLUMN directory TEXT NOT NULL DEFAULT '';"
                   "CREATE TABLE origin ("
                   "  id INTEGER PRIMARY KEY CHECK (id = 1), peer_node TEXT NOT NULL,"
                   "  peer_address TEXT NOT NULL, applied_at INTEGER NOT NULL);"
                   "CREATE TABLE fleet ("
                   "  id INTEGER PRIMARY KEY CHECK (id = 1), revision INTEGER NOT NULL,"
                   "  envelope BLOB NOT NULL);"
                   "CREATE TABLE kept (node_id TEXT PRIMARY KEY, revision INTEGER NOT NULL,"
                   "  envelope BLOB NOT NULL) WITHOUT ROWID;"},
    // Health checks: the damped state of each check the node runs, so status and the local
    // API answer with it offline and across restarts.
    sql::Migration{3,
                   "CREATE TABLE check_results (name TEXT PRIMARY KEY, result TEXT NOT NULL) "
                   "WITHOUT ROWID;"},
};

// Associated data of each wrapped row: a row moved to another place does not decrypt.
std::string aad_tls_key(std::string_view node) {
  return fmt::format("lab-cache|tls-key|{}", node);
}
std::string aad_sealing_key(std::string_view node) {
  return fmt::format("lab-cache|sealing-key|{}", node);
}
std::string aad_envelope(std::string_view node) {
  return fmt::format("lab-cache|envelope|{}", node);
}
std::string aad_kept(std::string_view node, std::string_view kept) {
  return fmt::format("lab-cache|kept|{}|{}", node, kept);
}
std::string aad_secret(std::string_view node, std::string_view name, std::int64_t version) {
  return fmt::format("lab-cache|secret|{}|{}|{}", node, name, version);
}

Error storage(const Error& e) {
  return {CacheError::storage, e.message()};
}

template <class T>
Result<T> checked(Result<T> r) {
  if (!r)
    return storage(r.error());
  return r;
}
Result<void> checked(const Result<void>& r) {
  if (!r)
    return storage(r.error());
  return {};
}

// The bundle row's peer directory (keepers, gossip partners, revoked serials), stored as a
// bundle holding only those. Empty in a bundle stored before peer sync: no peers known until the
// next one.
Result<protocol::Bundle> parse_directory(const std::string& text) {
  if (text.empty())
    return protocol::Bundle{};
  auto parsed = protocol::parse_bundle(text);
  if (!parsed)
    return Error(CacheError::bad_row, "the cached peer directory does not parse");
  return std::move(*parsed);
}

}  // namespace

const boost::system::error_category& cache_category() noexcept {
  static const ErrorCategory<CacheError> kCategory("lab.cache",
                                                   [](CacheError e) noexcept -> const char* {
                                                     switch (e) {
                                                       case CacheError::storage:
                                                         return "cache storage failed";
                                                       case CacheError::not_joined:
                                                         return "this node has not joined";
                                                       case CacheError::already_joined:
                                                         return "this node has already joined";
                                                       case CacheError::bad_identity:
                                                         return "stored identity unreadable";
                                                       case CacheError::bad_signature:
                                                         return "bundle signature rejected";
                                                       case CacheError::bad_bundle:
                                                         return "invalid bundle";
                                                       case CacheError::wrong_node:
                                                         return "bundle for another node";
                                                       case CacheError::not_newer:
                                                         return "bundle not newer than the cache";
                                                       case CacheError::no_secret:
                                                         return "no such secret";
                                                       case CacheError::secret_unopened:
                                                         return "secret does not open";
                                                       case CacheError::bad_row:
                                                         return "cached row unreadable";
                                                     }
                                                     return "cache error";
                                                   });
  return kCategory;
}

Result<crypto::SecretBytes> open_secret(const View& view, const crypto::X25519PrivateKey& key,
                                        std::string_view name) {
  const auto it = view.secrets.find(name);
  if (it == view.secrets.end())
    return Error(CacheError::no_secret, fmt::format("no secret '{}' is cached", name));
  const std::string aad = protocol::sealed_secret_aad(view.node_id, name, it->second.version);
  auto r = crypto::open(key, it->second.sealed, crypto::as_bytes(aad));
  if (!r) {
    return Error(CacheError::secret_unopened,
                 fmt::format("secret '{}' does not open with this node's key", name));
  }
  return r;
}

struct Cache::Impl {
  std::mutex mutex;
  sql::Database db;
  std::shared_ptr<const keystore::DataKey> key;
  std::optional<Identity> identity;  // decoded once, then kept

  Impl(sql::Database d, std::shared_ptr<const keystore::DataKey> k)
      : db(std::move(d)), key(std::move(k)) {}

  Result<Identity> load_identity() {
    if (identity)
      return *identity;
    LAB_TRY_ASSIGN(auto st, checked(db.prepare(
                                "SELECT node_id, name, coordinator_url, certificate_pem, ca_pem, "
                                "bundle_key, state, tls_key, sealing_key FROM identity")));
    LAB_TRY_ASSIGN(bool row, checked(st.step()));
    if (!row)
      return Error(CacheError::not_joined, "this node has not joined; run 'labd join'");
    Identity id;
    id.node_id = st.text(0);
    id.name = st.text(1);
    id.coordinator_url = st.text(2);
    id.certificate_pem = st.text(3);
    id.ca_pem = st.text(4);
    id.bundle_key = st.text(5);
    id.state = st.text(6);
    auto tls = key->unwrap(st.blob(7), aad_tls_key(id.node_id));
    auto sealing = key->unwrap(st.blob(8), aad_sealing_key(id.node_id));
    if (!tls || !sealing) {
      return Error(CacheError::bad_identity,
                   "the node keys do not decrypt under the data key (the cache belongs to "
                   "another data key or is damaged)");
    }
    id.tls_key_pem.assign(crypto::as_chars(*tls));
    id.sealing_key = std::move(*sealing);
    identity = id;
    return id;
  }

  Result<crypto::Ed25519PublicKey> bundle_key() {
    LAB_TRY_ASSIGN(Identity id, load_identity());
    auto raw = crypto::base64url_decode(id.bundle_key);
    if (!raw)
      return Error(CacheError::bad_identity, "the stored bundle key does not decode");
    return crypto::Ed25519PublicKey::from_raw(*raw);
  }

  Result<std::int64_t> current_revision() {
    LAB_TRY_ASSIGN(auto st, checked(db.prepare("SELECT revision FROM bundle")));
    LAB_TRY_ASSIGN(bool row, checked(st.step()));
    return row ? st.int64(0) : 0;
  }

  // The table keeps its first name; it has only ever been written on confirmations.
  Result<void> write_contact(std::int64_t now) {
    LAB_TRY_ASSIGN(auto st,
                   checked(db.prepare("INSERT INTO contact(id, last_contact) VALUES (1, ?) "
                                      "ON CONFLICT(id) DO UPDATE SET last_contact = "
                                      "excluded.last_contact")));
    LAB_TRY(checked(st.bind(now)));
    return checked(st.run());
  }
};

Cache::Cache(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Cache::~Cache() = default;

Result<std::unique_ptr<Cache>> Cache::open(const std::filesystem::path& path,
                                           std::shared_ptr<const keystore::DataKey> key) {
  LAB_TRY_ASSIGN(sql::Database d, checked(sql::Database::open(path)));
  LAB_TRY(checked(sql::migrate(d, kMigrations)));
  // At most 256 KiB of page cache (SQLite's default is 2 MiB): the cache is read once at start
  // and after each bundle; a big transaction spills to the WAL instead of growing the heap.
  LAB_TRY(checked(d.exec("PRAGMA cache_size = -256")));
  return std::unique_ptr<Cache>(new Cache(std::make_unique<Impl>(std::move(d), std::move(key))));
}

const std::filesystem::path& Cache::path() const noexcept {
  return impl_->db.path();
}

void Cache::release_memory() noexcept {
  const std::lock_guard lock(impl_->mutex);
  sqlite3_db_release_memory(impl_->db.handle());
}

bool Cache::configure_process_memory() noexcept {
  // pMem = NULL, N = 0: page-cache lines come from sqlite3_malloc one by one.
  return sqlite3_config(SQLITE_CONFIG_PAGECACHE, nullptr, 0, 0) == SQLITE_OK;
}

Result<bool> Cache::joined() {
  const std::lock_guard lock(impl_->mutex);
  LAB_TRY_ASSIGN(auto st, checked(impl_->db.prepare("SELECT count(*) FROM identity")));
  LAB_TRY(checked(st.step()));
  return st.int64(0) > 0;
}

Result<void> Cache::store_identity(const Identity& id, bool replace) {
  const std::lock_guard lock(impl_->mutex);
  auto& d = impl_->db;
  LAB_TRY_ASSIGN(auto tls,
                 impl_->key->wrap(crypto::as_bytes(id.tls_key_pem), aad_tls_key(id.node_id)));
  LAB_TRY_ASSIGN(auto sealing, impl_->key->wrap(id.sealing_key, aad_sealing_key(id.node_id)));
  LAB_TRY_ASSIGN(sql::Transaction tx, checked(sql::Transaction::begin(d)));
  LAB_TRY_ASSIGN(auto count, checked(d.prepare("SELECT count(*) FROM identity")));
  LAB_TRY(checked(count.step()));
  if (count.int64(0) > 0) {
    if (!replace) {
      return Error(CacheError::already_joined,
                   "this node has already joined; 'labd rejoin <join-string>' enrols it again "
                   "(the same node while its key still works)");
    }
    LAB_TRY(
        checked(d.exec("DELETE FROM identity; DELETE FROM bundle; DELETE FROM contact;"
                       "DELETE FROM labels; DELETE FROM groups; DELETE FROM secrets;"
                       "DELETE FROM origin; DELETE FROM fleet; DELETE FROM kept;")));
  }
  LAB_TRY_ASSIGN(auto st,
                 checked(d.prepare("INSERT INTO identity(id, node_id, name, coordinator_url, "
                                   "certificate_pem, ca_pem, bundle_key, state, tls_key, "
                                   "sealing_key) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)")));
  LAB_TRY(checked(st.bind(id.node_id, id.name, id.coordinator_url, id.certificate_pem, id.ca_pem,
                          id.bundle_key, id.state, tls, sealing)));
  LAB_TRY(checked(st.run()));
  LAB_TRY(checked(tx.commit()));
  impl_->identity = id;
  return {};
}

Result<Identity> Cache::identity() {
  const std::lock_guard lock(impl_->mutex);
  return impl_->load_identity();
}

Result<void> Cache::update_certificate(std::string_view certificate_pem, std::string_view key_pem) {
  const std::lock_guard lock(impl_->mutex);
  LAB_TRY_ASSIGN(Identity id, impl_->load_identity());
  LAB_TRY_ASSIGN(auto tls, impl_->key->wrap(crypto::as_bytes(key_pem), aad_tls_key(id.node_id)));
  LAB_TRY_ASSIGN(auto st,
                 checked(impl_->db.prepare(
                     "UPDATE identity SET certificate_pem = ?, tls_key = ? WHERE id = 1")));
  LAB_TRY(checked(st.bind(certificate_pem, tls)));
  LAB_TRY(checked(st.run()));
  impl_->identity->certificate_pem = certificate_pem;
  impl_->identity->tls_key_pem = key_pem;
  return {};
}

Result<protocol::Bundle> Cache::apply(crypto::ByteView envelope, std::int64_t now,
                                      const Origin* from_peer) {
  const std::lock_guard lock(impl_->mutex);
  LAB_TRY_ASSIGN(Identity id, impl_->load_identity());
  LAB_TRY_ASSIGN(auto bundle_key, impl_->bundle_key());
  auto env = shared::envelope::open(envelope, bundle_key, protocol::kBundleKind);
  if (!env) {
    return Error(CacheError::bad_signature, "bundle refused: " + env.error().message());
  }
  auto parsed = protocol::parse_bundle(crypto::as_chars(env->payload));
  if (!parsed)
    return Error(CacheError::bad_bundle, parsed.error().message());
  protocol::Bundle& b = *parsed;
  if (b.node_id != id.node_id) {
    return Error(CacheError::wrong_node,
                 fmt::format("bundle for node {} refused: this is node {}", b.node_id, id.node_id));
  }
  // A stale bundle (a peer's copy, a repeated answer) is refused before any sealed box is
  // opened; the check is repeated inside the transaction, which is what makes it hold.
  LAB_TRY_ASSIGN(std::int64_t cached, impl_->current_revision());
  if (b.revision <= cached) {
    return Error(
        CacheError::not_newer,
        fmt::format("bundle revision {} is not newer than the cached {}", b.revision, cached));
  }
  auto sealing = crypto::X25519PrivateKey::from_raw(id.sealing_key);
  if (!sealing)
    return Error(CacheError::bad_identity, "the stored sealing key does not decode");
  // Open every sealed box before touching the database: one that does not open with this
  // node's key (sealed to keys of an earlier enrolment, or damaged) refuses the bundle whole,
  // so the cache keeps secrets it can serve instead of trading them for ones it cannot.
  std::vector<crypto::Bytes> wrapped_secrets;
  wrapped_secrets.reserve(b.secrets.size());
  for (const auto& s : b.secrets) {
    auto raw = crypto::base64url_decode(s.sealed);
    if (!raw)
      return Error(CacheError::bad_bundle, fmt::format("secret '{}' is not base64url", s.name));
    const std::string aad = protocol::sealed_secret_aad(id.node_id, s.name, s.version);
    if (!crypto::open(*sealing, *raw, crypto::as_bytes(aad))) {
      return Error(CacheError::secret_unopened,
                   fmt::format("bundle revision {} refused: secret '{}' does not open with this "
                               "node's sealing key",
                               b.revision, s.name));
    }
    LAB_TRY_ASSIGN(auto w, impl_->key->wrap(*raw, aad_secret(id.node_id, s.name, s.version)));
    wrapped_secrets.push_back(std::move(w));
  }
  LAB_TRY_ASSIGN(auto wrapped_envelope, impl_->key->wrap(envelope, aad_envelope(id.node_id)));

  auto& d = impl_->db;
  LAB_TRY_ASSIGN(sql::Transaction tx, checked(sql::Transaction::begin(d)));
  LAB_TRY_ASSIGN(std::int64_t current, impl_->current_revision());
  if (b.revision <= current) {
    return Error(
        CacheError::not_newer,
        fmt::format("bundle revision {} is not newer than the cached {}", b.revision, current));
  }
  LAB_TRY(checked(d.exec("DELETE FROM labels; DELETE FROM groups; DELETE FROM secrets;")));
  LAB_TRY_ASSIGN(
      auto put_bundle,
      checked(d.prepare("INSERT INTO bundle(id, revision, issued_at, state, name, envelope, "
                        "directory) VALUES (1, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                        "revision = excluded.revision, issued_at = excluded.issued_at, "
                        "state = excluded.state, name = excluded.name, "
                        "envelope = excluded.envelope, directory = excluded.directory")));
  protocol::Bundle directory;
  directory.node_id = b.node_id;
  directory.name = b.name;
  directory.revision = b.revision;
  directory.issued_at = b.issued_at;
  directory.state = b.state;
  directory.revoked_serials = b.revoked_serials;
  directory.peers = b.peers;
  directory.gossip = b.gossip;
  directory.checks = b.checks;
  LAB_TRY(checked(put_bundle.bind(b.revision, b.issued_at, b.state, b.name, wrapped_envelope,
                                  protocol::serialize(directory))));
  LAB_TRY(checked(put_bundle.run()));
  LAB_TRY_ASSIGN(auto put_label,
                 checked(d.prepare("INSERT INTO labels(key, value) VALUES (?, ?)")));
  for (const auto& [k, v] : b.labels) {
    LAB_TRY(checked(put_label.bind(k, v)));
    LAB_TRY(checked(put_label.run()));
  }
  LAB_TRY_ASSIGN(auto put_group,
                 checked(d.prepare("INSERT OR IGNORE INTO groups(name) VALUES (?)")));
  for (const auto& g : b.groups) {
    LAB_TRY(checked(put_group.bind(g)));
    LAB_TRY(checked(put_group.run()));
  }
  LAB_TRY_ASSIGN(auto put_secret,
                 checked(d.prepare("INSERT OR REPLACE INTO secrets(name, version, sealed) "
                                   "VALUES (?, ?, ?)")));
  for (std::size_t i = 0; i < b.secrets.size(); ++i) {
    LAB_TRY(checked(put_secret.bind(b.secrets[i].name, b.secrets[i].version, wrapped_secrets[i])));
    LAB_TRY(checked(put_secret.run()));
  }
  // From a peer the view is newer but the coordinator confirmed nothing.
  if (from_peer == nullptr)
    LAB_TRY(impl_->write_contact(now));
  LAB_TRY_ASSIGN(auto put_origin,
                 checked(d.prepare("INSERT INTO origin(id, peer_node, peer_address, applied_at) "
                                   "VALUES (1, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                                   "peer_node = excluded.peer_node, "
                                   "peer_address = excluded.peer_address, "
                                   "applied_at = excluded.applied_at")));
  LAB_TRY(checked(put_origin.bind(from_peer != nullptr ? from_peer->peer_node : std::string(),
                                  from_peer != nullptr ? from_peer->peer_address : std::string(),
                                  now)));
  LAB_TRY(checked(put_origin.run()));
  LAB_TRY(checked(tx.commit()));
  return std::move(b);
}

Result<void> Cache::touch(std::int64_t now) {
  const std::lock_guard lock(impl_->mutex);
  return impl_->write_contact(now);
}

Result<void> Cache::store_check_results(const std::vector<protocol::CheckResult>& results) {
  const std::lock_guard lock(impl_->mutex);
  auto& d = impl_->db;
  LAB_TRY_ASSIGN(sql::Transaction tx, checked(sql::Transaction::begin(d)));
  LAB_TRY(checked(d.exec("DELETE FROM check_results")));
  LAB_TRY_ASSIGN(auto put,
                 checked(d.prepare("INSERT INTO check_results(name, result) VALUES (?, ?)")));
  for (const auto& r : results) {
    LAB_TRY(checked(put.bind(r.name, boost::json::serialize(protocol::check_result_to_json(r)))));
    LAB_TRY(checked(put.run()));
  }
  return checked(tx.commit());
}

Result<std::vector<protocol::CheckResult>> Cache::check_results() {
  const std::lock_guard lock(impl_->mutex);
  LAB_TRY_ASSIGN(auto st,
                 checked(impl_->db.prepare("SELECT result FROM check_results ORDER BY name")));
  std::vector<protocol::CheckResult> out;
  for (;;) {
    LAB_TRY_ASSIGN(bool row, checked(st.step()));
    if (!row)
      break;
    auto o = shared::json::parse_object(st.text(0));
    if (!o)
      continue;
    if (auto r = protocol::check_result_from_json(*o))
      out.push_back(std::move(*r));
  }
  return out;
}

Result<std::int64_t> Cache::revision() {
  const std::lock_guard lock(impl_->mutex);
  return impl_->current_revision();
}

Result<std::optional<crypto::Bytes>> Cache::envelope() {
  const std::lock_guard lock(impl_->mutex);
  LAB_TRY_ASSIGN(Identity id, impl_->load_identity());
  LAB_TRY_ASSIGN(auto st, checked(impl_->db.prepare("SELECT envelope FROM bundle")));
  LAB_TRY_ASSIGN(bool row, checked(st.step()));
  if (!row)
    return std::optional<crypto::Bytes>{};
  auto plain = impl_->key->unwrap(st.blob(0), aad_envelope(id.node_id));
  if (!plain)
    return Error(CacheError::bad_row, "the cached envelope does not decrypt");
  return std::optional<crypto::Bytes>(crypto::Bytes(plain->begin(), plain->end()));
}

Result<Cache::Keepers> Cache::keepers() {
  const std::lock_guard lock(impl_->mutex);
  LAB_TRY_ASSIGN(auto st, checked(impl_->db.prepare("SELECT revision, directory FROM bundle")));
  LAB_TRY_ASSIGN(bool row, checked(st.step()));
  Keepers k;
  if (!row)
    return k;
  k.revision = st.int64(0);
  LAB_TRY_ASSIGN(auto dir, parse_directory(st.text(1)));
  k.keepers = std::move(dir.peers);
  return k;
}

Result<View> Cache::view() {
  const std::lock_guard lock(impl_->mutex);
  LAB_TRY_ASSIGN(Identity id, impl_->load_identity());
  auto& d = impl_->db;
  // One read transaction: the rows of one bundle, never half of the next.
  LAB_TRY(checked(d.exec("BEGIN")));
  struct Rollback {
    sql::Database& d;
    ~Rollback() { (void)d.exec("ROLLBACK"); }
  } rollback{d};
  View v;
  v.node_id = id.node_id;
  v.name = id.name;
  v.state = id.state;
  {
    LAB_TRY_ASSIGN(
        auto st,
        checked(d.prepare("SELECT revision, issued_at, state, name, directory FROM bundle")));
    LAB_TRY_ASSIGN(bool row, checked(st.step()));
    if (row) {
      v.revision = st.int64(0);
      v.issued_at = st.int64(1);
      v.state = st.text(2);
      v.name = st.text(3);
      LAB_TRY_ASSIGN(auto dir, parse_directory(st.text(4)));
      v.keepers = std::move(dir.peers);
      v.gossip = std::move(dir.gossip);
      v.revoked_serials = std::move(dir.revoked_serials);
      v.checks = std::move(dir.checks);
    }
  }
  {
    LAB_TRY_ASSIGN(auto st,
                   checked(d.prepare("SELECT peer_node, peer_address, applied_at FROM origin")));
    LAB_TRY_ASSIGN(bool row, checked(st.step()));
    if (row)
      v.origin = Origin{st.text(0), st.text(1), st.int64(2)};
  }
  {
    LAB_TRY_ASSIGN(auto st, checked(d.prepare("SELECT last_contact FROM contact")));
    LAB_TRY_ASSIGN(bool row, checked(st.step()));
    if (row)
      v.confirmed_at = st.int64(0);
  }
  {
    LAB_TRY_ASSIGN(auto st, checked(d.prepare("SELECT key, value FROM labels")));
    for (;;) {
      LAB_TRY_ASSIGN(bool row, checked(st.step()));
      if (!row)
        break;
      v.labels.emplace(st.text(0), st.text(1));
    }
  }
  {
    LAB_TRY_ASSIGN(auto st, checked(d.prepare("SELECT name FROM groups")));
    for (;;) {
      LAB_TRY_ASSIGN(bool row, checked(st.step()));
      if (!row)
        break;
      v.groups.push_back(st.text(0));
    }
  }
  {
    LAB_TRY_ASSIGN(auto st, checked(d.prepare("SELECT name, version, sealed FROM secrets")));
    for (;;) {
      LAB_TRY_ASSIGN(bool row, checked(st.step()));
      if (!row)
        break;
      const std::string name = st.text(0);
      const std::int64_t version = st.int64(1);
      auto sealed = impl_->key->unwrap(st.blob(2), aad_secret(id.node_id, name, version));
      if (!sealed)
        return Error(CacheError::bad_row, fmt::format("cached secret '{}' does not decrypt", name));
      v.secrets.emplace(name, CachedSecret{version, crypto::Bytes(sealed->begin(), sealed->end())});
    }
  }
  return v;
}

Result<bool> Cache::store_fleet(crypto::ByteView envelope, std::int64_t revision) {
  const std::lock_guard lock(impl_->mutex);
  auto& d = impl_->db;
  LAB_TRY_ASSIGN(sql::Transaction tx, checked(sql::Transaction::begin(d)));
  LAB_TRY_ASSIGN(auto held, checked(d.prepare("SELECT revision FROM fleet")));
  LAB_TRY_ASSIGN(bool row, checked(held.step()));
  if (row && held.int64(0) >= revision)
    return false;
  LAB_TRY_ASSIGN(auto put,
                 checked(d.prepare("INSERT INTO fleet(id, revision, envelope) VALUES (1, ?, ?) "
                                   "ON CONFLICT(id) DO UPDATE SET revision = excluded.revision, "
                                   "envelope = excluded.envelope")));
  LAB_TRY(checked(put.bind(revision, crypto::Bytes(envelope.begin(), envelope.end()))));
  LAB_TRY(checked(put.run()));
  LAB_TRY(checked(tx.commit()));
  return true;
}

Result<std::optional<crypto::Bytes>> Cache::fleet() {
  const std::lock_guard lock(impl_->mutex);
  LAB_TRY_ASSIGN(auto st, checked(impl_->db.prepare("SELECT envelope FROM fleet")));
  LAB_TRY_ASSIGN(bool row, checked(st.step()));
  if (!row)
    return std::optional<crypto::Bytes>{};
  return std::optional<crypto::Bytes>(st.blob(0));
}

Result<KeptEnvelope> Cache::keep(crypto::ByteView envelope) {
  const std::lock_guard lock(impl_->mutex);
  LAB_TRY_ASSIGN(Identity id, impl_->load_identity());
  LAB_TRY_ASSIGN(auto bundle_key, impl_->bundle_key());
  auto env = shared::envelope::open(envelope, bundle_key, protocol::kBundleKind);
  if (!env)
    return Error(CacheError::bad_signature, "kept envelope refused: " + env.error().message());
  auto b = protocol::parse_bundle(crypto::as_chars(env->payload));
  if (!b)
    return Error(CacheError::bad_bundle, "kept envelope: " + b.error().message());
  if (b->node_id == id.node_id)
    return Error(CacheError::wrong_node, "a node does not keep its own envelope");
  KeptEnvelope out{b->node_id, b->revision, false};
  LAB_TRY_ASSIGN(auto wrapped, impl_->key->wrap(envelope, aad_kept(id.node_id, b->node_id)));
  auto& d = impl_->db;
  LAB_TRY_ASSIGN(sql::Transaction tx, checked(sql::Transaction::begin(d)));
  LAB_TRY_ASSIGN(auto held, checked(d.prepare("SELECT revision FROM kept WHERE node_id = ?")));
  LAB_TRY(checked(held.bind(b->node_id)));
  LAB_TRY_ASSIGN(bool row, checked(held.step()));
  if (row && held.int64(0) >= b->revision)
    return out;
  LAB_TRY_ASSIGN(auto put, checked(d.prepare("INSERT OR REPLACE INTO kept(node_id, revision, "
                                             "envelope) VALUES (?, ?, ?)")));
  LAB_TRY(checked(put.bind(b->node_id, b->revision, wrapped)));
  LAB_TRY(checked(put.run()));
  LAB_TRY(checked(tx.commit()));
  out.stored = true;
  return out;
}

Result<std::size_t> Cache::retain_kept(const std::vector<std::string>& node_ids) {
  const std::lock_guard lock(impl_->mutex);
  auto& d = impl_->db;
  LAB_TRY_ASSIGN(sql::Transaction tx, checked(sql::Transaction::begin(d)));
  LAB_TRY_ASSIGN(auto list, checked(d.prepare("SELECT node_id FROM kept")));
  std::vector<std::string> drop;
  for (;;) {
    LAB_TRY_ASSIGN(bool row, checked(list.step()));
    if (!row)
      break;
    std::string n = list.text(0);
    if (std::find(node_ids.begin(), node_ids.end(), n) == node_ids.end())
      drop.push_back(std::move(n));
  }
  LAB_TRY_ASSIGN(auto del, checked(d.prepare("DELETE FROM kept WHERE node_id = ?")));
  for (const auto& n : drop) {
    LAB_TRY(checked(del.bind(n)));
    LAB_TRY(checked(del.run()));
  }
  LAB_TRY(checked(tx.commit()));
  return drop.size();
}

Result<std::optional<Cache::KeptBytes>> Cache::kept_envelope(std::string_view node_id) {
  const std::lock_guard lock(impl_->mutex);
  LAB_TRY_ASSIGN(Identity id, impl_->load_identity());
  LAB_TRY_ASSIGN(
      auto st, checked(impl_->db.prepare("SELECT revision, envelope FROM kept WHERE node_id = ?")));
  LAB_TRY(checked(st.bind(node_id)));
  LAB_TRY_ASSIGN(bool row, checked(st.step()));
  if (!row)
    return std::optional<KeptBytes>{};
  auto plain = impl_->key->unwrap(st.blob(1), aad_kept(id.node_id, node_id));
  if (!plain)
    return Error(CacheError::bad_row, "a kept envelope does not decrypt");
  return std::optional<KeptBytes>(
      KeptBytes{st.int64(0), crypto::Bytes(plain->begin(), plain->end())});
}

Result<KeptSummary> Cache::kept() {
  const std::lock_guard lock(impl_->mutex);
  LAB_TRY_ASSIGN(auto st, checked(impl_->db.prepare("SELECT node_id, revision FROM kept")));
  KeptSummary out;
  for (;;) {
    LAB_TRY_ASSIGN(bool row, checked(st.step()));
    if (!row)
      break;
    out.node_ids.push_back(st.text(0));
    out.revision = std::max(out.revision, st.int64(1));
  }
  return out;
}

Result<void> Cache::verify() {
  auto stored = envelope();
  if (!stored)
    return stored.error();
  LAB_TRY_ASSIGN(View v, view());
  if (!stored->has_value()) {
    if (v.revision != 0 || !v.labels.empty() || !v.secrets.empty())
      return Error(CacheError::bad_row, "bundle rows without an envelope");
    return {};
  }
  LAB_TRY_ASSIGN(Identity id, identity());
  LAB_TRY_ASSIGN(auto raw_key, crypto::base64url_decode(id.bundle_key));
  LAB_TRY_ASSIGN(auto bundle_key, crypto::Ed25519PublicKey::from_raw(raw_key));
  // Moved out of the optional: GCC 12 at -O3 reports a false maybe-uninitialized otherwise.
  const crypto::Bytes env = std::move(**stored);
  auto opened = shared::envelope::open(env, bundle_key, protocol::kBundleKind);
  if (!opened)
    return Error(CacheError::bad_signature, "cached envelope: " + opened.error().message());
  LAB_TRY_ASSIGN(auto b, protocol::parse_bundle(crypto::as_chars(opened->payload)));
  if (b.node_id != id.node_id || b.revision != v.revision || b.labels != v.labels ||
      b.secrets.size() != v.secrets.size()) {
    return Error(CacheError::bad_row,
                 fmt::format("cached rows (revision {}) disagree with the cached envelope "
                             "(revision {})",
                             v.revision, b.revision));
  }
  return {};
}

}  // namespace lab::agent::cache
