#pragma once

#include "shared/errors/error.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace lab::shared::sqlite {

enum class SqliteError {
  open_failed = 1,   // sqlite3_open_v2 or the connection pragmas failed
  prepare_failed,    // SQL did not compile
  bind_failed,       // a parameter could not be bound
  step_failed,       // execution failed (I/O, corruption, ...)
  busy,              // the database stayed locked past the busy timeout
  constraint,        // a UNIQUE/CHECK/FOREIGN KEY constraint was violated
  no_row,            // a query expected to return one row returned none
  migration_failed,  // a schema migration did not apply
  schema_too_new,    // the database was written by a newer version of lab
};
const boost::system::error_category& sqlite_category() noexcept;
inline boost::system::error_code make_error_code(SqliteError e) noexcept {
  return {static_cast<int>(e), sqlite_category()};
}

/// A BLOB parameter; plain std::string_view binds as TEXT.
struct Blob {
  std::span<const std::uint8_t> bytes;
};

class Database;

/// A prepared statement. Parameters are bound by position (1-based in SQL, bound in order by
/// bind()). Owned by one thread at a time; finalised on destruction.
class Statement {
 public:
  Statement(Statement&&) noexcept;
  Statement& operator=(Statement&&) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  /// Resets the statement and binds all parameters, in order.
  template <class... Args>
  Result<void> bind(const Args&... args) {
    reset();
    int index = 1;
    Result<void> r;
    ((r ? (r = bind_one(index++, args)) : r), ...);
    return r;
  }

  /// Executes one step: true when a row is available, false when done.
  Result<bool> step();
  /// Steps to completion, ignoring rows (INSERT/UPDATE/DELETE).
  Result<void> run();
  void reset() noexcept;

  [[nodiscard]] int column_count() const noexcept;
  [[nodiscard]] bool is_null(int col) const noexcept;
  [[nodiscard]] std::int64_t int64(int col) const noexcept;
  [[nodiscard]] double real(int col) const noexcept;
  [[nodiscard]] std::string text(int col) const;
  [[nodiscard]] std::vector<std::uint8_t> blob(int col) const;
  [[nodiscard]] std::optional<std::int64_t> optional_int64(int col) const noexcept;
  [[nodiscard]] std::optional<std::string> optional_text(int col) const;

 private:
  friend class Database;
  Statement(Database& db, sqlite3_stmt* stmt) noexcept : db_(&db), stmt_(stmt) {}

  Result<void> bind_one(int index, std::int64_t v);
  Result<void> bind_one(int index, int v) { return bind_one(index, static_cast<std::int64_t>(v)); }
  Result<void> bind_one(int index, std::uint32_t v) {
    return bind_one(index, static_cast<std::int64_t>(v));
  }
  Result<void> bind_one(int index, bool v) { return bind_one(index, static_cast<std::int64_t>(v)); }
  Result<void> bind_one(int index, double v);
  Result<void> bind_one(int index, std::string_view v);
  Result<void> bind_one(int index, const std::string& v) {
    return bind_one(index, std::string_view(v));
  }
  Result<void> bind_one(int index, const char* v) { return bind_one(index, std::string_view(v)); }
  Result<void> bind_one(int index, Blob v);
  Result<void> bind_one(int index, const std::vector<std::uint8_t>& v) {
    return bind_one(index, Blob{v});
  }
  Result<void> bind_one(int index, std::nullopt_t);
  template <class T>
  Result<void> bind_one(int index, const std::optional<T>& v) {
    return v ? bind_one(index, *v) : bind_one(index, std::nullopt);
  }

  Database* db_;
  sqlite3_stmt* stmt_;
};

struct OpenOptions {
  bool create = true;
  bool read_only = false;
  std::chrono::milliseconds busy_timeout{5000};
};

/// One SQLite connection in WAL mode with synchronous=FULL (a committed transaction survives
/// a power cut) and foreign keys on. Use from one thread at a time.
class Database {
 public:
  static Result<Database> open(const std::filesystem::path& path, const OpenOptions& options = {});

  Database(Database&&) noexcept;
  Database& operator=(Database&&) noexcept;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  /// Runs one or more statements without results (DDL, pragmas).
  Result<void> exec(std::string_view sql);
  Result<Statement> prepare(std::string_view sql);

  [[nodiscard]] std::int64_t last_insert_rowid() const noexcept;
  [[nodiscard]] int changes() const noexcept;
  [[nodiscard]] sqlite3* handle() const noexcept { return db_; }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

  /// The error of the last failed call on this connection, mapped to a SqliteError.
  [[nodiscard]] Error last_error(SqliteError fallback, std::string_view what) const;

 private:
  Database(sqlite3* db, std::filesystem::path path) noexcept : db_(db), path_(std::move(path)) {}
  sqlite3* db_ = nullptr;
  std::filesystem::path path_;
};

/// RAII transaction: BEGIN IMMEDIATE on creation (takes the write lock up front, so a busy
/// database fails here and not at commit), ROLLBACK on destruction unless committed.
class Transaction {
 public:
  static Result<Transaction> begin(Database& db);
  Transaction(Transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  Result<void> commit();

 private:
  explicit Transaction(Database& db) noexcept : db_(&db) {}
  Database* db_;
};

/// One step of a schema; versions start at 1 and increase by 1.
struct Migration {
  int version;
  std::string_view sql;
};

/// Applies, each in its own transaction, every migration newer than the version recorded in the
/// `schema_version` table. Returns the resulting version. Fails with schema_too_new when the
/// database is newer than the newest migration given.
Result<int> migrate(Database& db, std::span<const Migration> migrations);

}  // namespace lab::shared::sqlite

template <>
struct boost::system::is_error_code_enum<lab::shared::sqlite::SqliteError> : std::true_type {};
