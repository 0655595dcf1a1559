#include "shared/sqlite/database.hpp"

#include <sqlite3.h>

#include <utility>

namespace lab::shared::sqlite {

const boost::system::error_category& sqlite_category() noexcept {
  static const ErrorCategory<SqliteError> kCategory(
      "lab.sqlite", [](SqliteError e) noexcept -> const char* {
        switch (e) {
          case SqliteError::open_failed:
            return "cannot open database";
          case SqliteError::prepare_failed:
            return "cannot prepare statement";
          case SqliteError::bind_failed:
            return "cannot bind parameter";
          case SqliteError::step_failed:
            return "statement failed";
          case SqliteError::busy:
            return "database is locked";
          case SqliteError::constraint:
            return "constraint violated";
          case SqliteError::no_row:
            return "no such row";
          case SqliteError::migration_failed:
            return "schema migration failed";
          case SqliteError::schema_too_new:
            return "database schema is newer than this program";
        }
        return "sqlite error";
      });
  return kCategory;
}

// ---- Statement ------------------------------------------------------------------------------

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    db_ = other.db_;
    stmt_ = std::exchange(other.stmt_, nullptr);
  }
  return *this;
}

Statement::~Statement() {
  sqlite3_finalize(stmt_);
}

void Statement::reset() noexcept {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Result<bool> Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW)
    return true;
  if (rc == SQLITE_DONE)
    return false;
  Error e = db_->last_error(SqliteError::step_failed, sqlite3_sql(stmt_));
  sqlite3_reset(stmt_);
  return e;
}

Result<void> Statement::run() {
  for (;;) {
    LAB_TRY_ASSIGN(bool row, step());
    if (!row)
      return {};
  }
}

namespace {
Result<void> check_bind(int rc, Database& db, int index) {
  if (rc == SQLITE_OK)
    return {};
  return db.last_error(SqliteError::bind_failed, "parameter " + std::to_string(index));
}
}  // namespace

Result<void> Statement::bind_one(int index, std::int64_t v) {
  return check_bind(sqlite3_bind_int64(stmt_, index, v), *db_, index);
}
Result<void> Statement::bind_one(int index, double v) {
  return check_bind(sqlite3_bind_double(stmt_, index, v), *db_, index);
}
Result<void> Statement::bind_one(int index, std::string_view v) {
  return check_bind(
      sqlite3_bind_text64(stmt_, index, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8), *db_,
      index);
}
Result<void> Statement::bind_one(int index, Blob v) {
  // A zero-length blob must still be a blob, not NULL: pass a non-null pointer.
  static const std::uint8_t kEmpty = 0;
  const void* data = v.bytes.empty() ? &kEmpty : v.bytes.data();
  return check_bind(sqlite3_bind_blob64(stmt_, index, data, v.bytes.size(), SQLITE_TRANSIENT), *db_,
                    index);
}
Result<void> Statement::bind_one(int index, std::nullopt_t) {
  return check_bind(sqlite3_bind_null(stmt_, index), *db_, index);
}

int Statement::column_count() const noexcept {
  return sqlite3_column_count(stmt_);
}
bool Statement::is_null(int col) const noexcept {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}
std::int64_t Statement::int64(int col) const noexcept {
  return sqlite3_column_int64(stmt_, col);
}
double Statement::real(int col) const noexcept {
  return sqlite3_column_double(stmt_, col);
}

std::string Statement::text(int col) const {
  const auto* p = sqlite3_column_text(stmt_, col);
  const int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? std::string()
                      : std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
}

std::vector<std::uint8_t> Statement::blob(int col) const {
  const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt_, col));
  const int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? std::vector<std::uint8_t>() : std::vector<std::uint8_t>(p, p + n);
}

std::optional<std::int64_t> Statement::optional_int64(int col) const noexcept {
  if (is_null(col))
    return std::nullopt;
  return int64(col);
}

std::optional<std::string> Statement::optional_text(int col) const {
  if (is_null(col))
    return std::nullopt;
  return text(col);
}

// ---- Database -------------------------------------------------------------------------------

Result<Database> Database::open(const std::filesystem::path& path, const OpenOptions& options) {
  sqlite3* raw = nullptr;
  int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  flags |= options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  if (options.create && !options.read_only)
    flags |= SQLITE_OPEN_CREATE;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    sqlite3_close_v2(raw);
    return Error(SqliteError::open_failed, path.string() + ": " + why);
  }
  Database db(raw, path);
  sqlite3_busy_timeout(raw, static_cast<int>(options.busy_timeout.count()));
  sqlite3_extended_result_codes(raw, 1);
  // WAL: readers never block the writer. synchronous=FULL: WAL is fsynced at every commit, so
  // an acknowledged transaction survives a crash or power cut.
  const char* pragmas = options.read_only ? "PRAGMA foreign_keys=ON;"
                                          : "PRAGMA journal_mode=WAL;"
                                            "PRAGMA synchronous=FULL;"
                                            "PRAGMA foreign_keys=ON;";
  if (auto r = db.exec(pragmas); !r) {
    return Error(SqliteError::open_failed, path.string() + ": " + r.error().detail());
  }
  // Validate that this is a database at all (a garbage file fails here, not later).
  if (auto r = db.exec("SELECT count(*) FROM sqlite_master;"); !r) {
    return Error(SqliteError::open_failed, path.string() + ": " + r.error().detail());
  }
  return db;
}

Database::Database(Database&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), path_(std::move(other.path_)) {}

Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    sqlite3_close_v2(db_);
    db_ = std::exchange(other.db_, nullptr);
    path_ = std::move(other.path_);
  }
  return *this;
}

Database::~Database() {
  sqlite3_close_v2(db_);
}

Error Database::last_error(SqliteError fallback, std::string_view what) const {
  const int code = sqlite3_extended_errcode(db_);
  const int primary = code & 0xff;
  SqliteError e = fallback;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
    e = SqliteError::busy;
  if (primary == SQLITE_CONSTRAINT)
    e = SqliteError::constraint;
  std::string detail(sqlite3_errmsg(db_));
  if (!what.empty())
    detail = std::string(what) + ": " + detail;
  return {e, std::move(detail)};
}

Result<void> Database::exec(std::string_view sql) {
  std::string owned(sql);
  char* msg = nullptr;
  const int rc = sqlite3_exec(db_, owned.c_str(), nullptr, nullptr, &msg);
  if (rc != SQLITE_OK) {
    std::string detail = msg != nullptr ? msg : sqlite3_errstr(rc);
    sqlite3_free(msg);
    Error e = last_error(SqliteError::step_failed, {});
    return Error(e.code(), detail);
  }
  return {};
}

Result<Statement> Database::prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK || stmt == nullptr) {
    sqlite3_finalize(stmt);
    return last_error(SqliteError::prepare_failed, sql);
  }
  return Statement(*this, stmt);
}

std::int64_t Database::last_insert_rowid() const noexcept {
  return sqlite3_last_insert_rowid(db_);
}
int Database::changes() const noexcept {
  return sqlite3_changes(db_);
}

// ---- Transaction ----------------------------------------------------------------------------

Result<Transaction> Transaction::begin(Database& db) {
  LAB_TRY(db.exec("BEGIN IMMEDIATE;"));
  return Transaction(db);
}

Transaction::~Transaction() {
  if (db_ != nullptr) {
    (void)db_->exec("ROLLBACK;");
  }
}

Result<void> Transaction::commit() {
  if (db_ == nullptr) {
    return Error(SqliteError::step_failed, "transaction already finished");
  }
  auto r = db_->exec("COMMIT;");
  if (r) {
    db_ = nullptr;
  }
  return r;
}

// ---- Migrations -----------------------------------------------------------------------------

Result<int> migrate(Database& db, std::span<const Migration> migrations) {
  LAB_TRY(
      db.exec("CREATE TABLE IF NOT EXISTS schema_version ("
              "  version INTEGER NOT NULL PRIMARY KEY,"
              "  applied_at INTEGER NOT NULL DEFAULT (strftime('%s','now')));"));
  LAB_TRY_ASSIGN(Statement current,
                 db.prepare("SELECT coalesce(max(version), 0) FROM schema_version"));
  LAB_TRY_ASSIGN(bool has_row, current.step());
  int version = has_row ? static_cast<int>(current.int64(0)) : 0;
  current.reset();

  const int newest = migrations.empty() ? 0 : migrations.back().version;
  if (version > newest) {
    return Error(SqliteError::schema_too_new,
                 db.path().string() + ": schema version " + std::to_string(version) +
                     ", this program knows up to " + std::to_string(newest));
  }
  int expected = 1;
  for (const auto& m : migrations) {
    if (m.version != expected++) {
      return Error(SqliteError::migration_failed, "migrations must be numbered 1, 2, 3, ...");
    }
    if (m.version <= version)
      continue;
    LAB_TRY_ASSIGN(Transaction tx, Transaction::begin(db));
    if (auto r = db.exec(m.sql); !r) {
      return Error(SqliteError::migration_failed,
                   "migration " + std::to_string(m.version) + ": " + r.error().detail());
    }
    LAB_TRY_ASSIGN(Statement insert, db.prepare("INSERT INTO schema_version(version) VALUES (?)"));
    LAB_TRY(insert.bind(m.version));
    LAB_TRY(insert.run());
    LAB_TRY(tx.commit());
    version = m.version;
  }
  return version;
}

}  // namespace lab::shared::sqlite
