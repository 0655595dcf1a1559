#include "bootstrap/coordinator/store.hpp"

#include <array>

namespace lab::bootstrap::coordinator {
namespace {

namespace sq = shared::sqlite;

// Every table of the coordinator. Labels, includes/excludes and facts are JSON text; times
// are unix seconds. The audit table is append-only: rows are never updated or deleted.
constexpr std::string_view kSchemaV1 = R"sql(
CREATE TABLE revision (
  id    INTEGER PRIMARY KEY CHECK (id = 1),
  value INTEGER NOT NULL
);
INSERT INTO revision (id, value) VALUES (1, 0);

CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

CREATE TABLE tokens (
  id            TEXT PRIMARY KEY,
  kind          TEXT NOT NULL,
  secret_sha256 BLOB NOT NULL,
  labels        TEXT NOT NULL,
  bind_mac      TEXT NOT NULL,
  bind_ip       TEXT NOT NULL,
  bind_host     TEXT NOT NULL,
  description   TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  expires_at    INTEGER NOT NULL,
  revoked_at    INTEGER,
  used_at       INTEGER,
  used_by       TEXT
);

CREATE TABLE nodes (
  id              TEXT PRIMARY KEY,
  name            TEXT NOT NULL UNIQUE,
  state           TEXT NOT NULL,
  labels          TEXT NOT NULL,
  facts           TEXT NOT NULL,
  created_at      INTEGER NOT NULL,
  last_seen       INTEGER NOT NULL,
  agent_version   TEXT NOT NULL,
  sealing_key     TEXT NOT NULL,
  peer_address    TEXT NOT NULL,
  cert_serial     TEXT NOT NULL,
  cert_expires_at INTEGER NOT NULL
);

CREATE TABLE node_macs (
  mac     TEXT PRIMARY KEY,
  node_id TEXT NOT NULL REFERENCES nodes(id)
);
CREATE INDEX node_macs_by_node ON node_macs(node_id);

CREATE TABLE certs (
  serial     TEXT PRIMARY KEY,
  node_id    TEXT NOT NULL REFERENCES nodes(id),
  issued_at  INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  revoked_at INTEGER
);

CREATE TABLE groups (
  name     TEXT PRIMARY KEY,
  selector TEXT NOT NULL,
  includes TEXT NOT NULL,
  excludes TEXT NOT NULL
);

CREATE TABLE secrets (
  name        TEXT PRIMARY KEY,
  value       BLOB NOT NULL,
  entitlement TEXT NOT NULL,
  version     INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  size        INTEGER NOT NULL
);

CREATE TABLE audit (
  seq     INTEGER PRIMARY KEY,
  at      INTEGER NOT NULL,
  actor   TEXT NOT NULL,
  address TEXT NOT NULL,
  action  TEXT NOT NULL,
  subject TEXT NOT NULL,
  detail  TEXT NOT NULL,
  hash    TEXT NOT NULL
);
)sql";

// Version 2: who owns a MAC and why, operator-registered machines, armed reinstalls, key
// protection, secrets that require a TPM, named operator credentials, and an index for the
// one live boot token per MAC.
constexpr std::string_view kSchemaV2 = R"sql(
ALTER TABLE nodes ADD COLUMN reinstall_armed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN key_protection TEXT NOT NULL DEFAULT '';
ALTER TABLE node_macs ADD COLUMN source TEXT NOT NULL DEFAULT 'legacy';
ALTER TABLE secrets ADD COLUMN require TEXT NOT NULL DEFAULT '';

CREATE TABLE machines (
  mac           TEXT PRIMARY KEY,
  ip            TEXT NOT NULL,
  description   TEXT NOT NULL,
  registered_at INTEGER NOT NULL
);

CREATE INDEX tokens_by_mac ON tokens(bind_mac) WHERE kind = 'boot';
CREATE INDEX tokens_by_expiry ON tokens(expires_at);

CREATE TABLE operators (
  name         TEXT PRIMARY KEY,
  token_sha256 BLOB NOT NULL UNIQUE,
  created_at   INTEGER NOT NULL,
  expires_at   INTEGER,
  revoked_at   INTEGER,
  created_by   TEXT NOT NULL
);
)sql";

// Version 3: certificates outlive their node. A deleted (revoked) node's serials stay on
// record as revoked, so a certificate it held is still refused; SQLite cannot drop a foreign
// key, so the table is rebuilt without it.
constexpr std::string_view kSchemaV3 = R"sql(
CREATE TABLE certs_v3 (
  serial     TEXT PRIMARY KEY,
  node_id    TEXT NOT NULL,
  issued_at  INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  revoked_at INTEGER
);
INSERT INTO certs_v3 (serial, node_id, issued_at, expires_at, revoked_at)
  SELECT serial, node_id, issued_at, expires_at, revoked_at FROM certs;
DROP TABLE certs;
ALTER TABLE certs_v3 RENAME TO certs;
CREATE INDEX certs_by_node ON certs(node_id);
)sql";

// Version 4: health checks (the definition as its JSON, the wire form), and the results each
// node last reported.
constexpr std::string_view kSchemaV4 = R"sql(
CREATE TABLE checks (
  name     TEXT PRIMARY KEY,
  selector TEXT NOT NULL,
  spec     TEXT NOT NULL
);
ALTER TABLE nodes ADD COLUMN checks TEXT NOT NULL DEFAULT '[]';
ALTER TABLE nodes ADD COLUMN config_run TEXT NOT NULL DEFAULT '{}';
)sql";

constexpr std::array kMigrations{sq::Migration{1, kSchemaV1}, sq::Migration{2, kSchemaV2},
                                 sq::Migration{3, kSchemaV3}, sq::Migration{4, kSchemaV4}};

}  // namespace

Error store_error(const Error& cause) {
  return {CoordinatorError::store_failed, cause.message()};
}

Result<std::unique_ptr<Store>> Store::open(const std::filesystem::path& path) {
  auto db = sq::Database::open(path);
  if (!db)
    return store_error(db.error());
  if (auto r = sq::migrate(*db, kMigrations); !r)
    return store_error(r.error());
  return std::unique_ptr<Store>(new Store(std::move(*db)));
}

Result<sq::Transaction> Store::begin() {
  auto tx = sq::Transaction::begin(db_);
  if (!tx)
    return store_error(tx.error());
  return std::move(*tx);
}

Result<sq::Statement*> Store::prepare(std::string_view sql) {
  if (auto it = statements_.find(sql); it != statements_.end())
    return &it->second;
  auto st = db_.prepare(sql);
  if (!st)
    return store_error(st.error());
  auto [it, inserted] = statements_.emplace(std::string(sql), std::move(*st));
  return &it->second;
}

Result<bool> Store::step(sq::Statement& st) {
  auto r = st.step();
  if (!r)
    return store_error(r.error());
  return *r;
}

Result<std::int64_t> Store::bump_revision() {
  LAB_TRY(run("UPDATE revision SET value = value + 1 WHERE id = 1"));
  return revision();
}

Result<std::int64_t> Store::revision() {
  LAB_TRY_ASSIGN(sq::Statement * st, query("SELECT value FROM revision WHERE id = 1"));
  LAB_TRY_ASSIGN(bool row, step(*st));
  const std::int64_t value = row ? st->int64(0) : 0;
  st->reset();
  return value;
}

Result<std::optional<std::string>> Store::meta(std::string_view key) {
  LAB_TRY_ASSIGN(sq::Statement * st, query("SELECT value FROM meta WHERE key = ?", key));
  LAB_TRY_ASSIGN(bool row, step(*st));
  std::optional<std::string> value;
  if (row)
    value = st->text(0);
  st->reset();
  return value;
}

Result<void> Store::set_meta(std::string_view key, std::string_view value) {
  return run(
      "INSERT INTO meta (key, value) VALUES (?, ?) "
      "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      key, value);
}

}  // namespace lab::bootstrap::coordinator
