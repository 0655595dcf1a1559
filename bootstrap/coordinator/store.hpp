#pragma once
// The coordinator's SQLite store: schema, migrations, a cache of prepared statements and the
// revision counter. One connection, used only under the coordinator's state mutex.
#include "bootstrap/coordinator/coordinator.hpp"
#include "shared/sqlite/database.hpp"

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace lab::bootstrap::coordinator {

/// Turns an SQLite failure into store_failed, keeping what the statement was.
Error store_error(const Error& cause);

class Store {
 public:
  /// Opens (creating when absent) `path` in WAL mode with synchronous=FULL and applies the
  /// schema migrations. store_failed on any SQLite error.
  static Result<std::unique_ptr<Store>> open(const std::filesystem::path& path);

  [[nodiscard]] shared::sqlite::Database& db() noexcept { return db_; }

  /// BEGIN IMMEDIATE: the write lock is taken before anything is read, so a check-then-write
  /// inside it (a token's single use) cannot race another writer, even another process.
  Result<shared::sqlite::Transaction> begin();

  /// A prepared statement from the cache (compiled once per SQL text), reset and bound.
  template <class... Args>
  Result<shared::sqlite::Statement*> query(std::string_view sql, const Args&... args) {
    LAB_TRY_ASSIGN(shared::sqlite::Statement * st, prepare(sql));
    if (auto r = st->bind(args...); !r)
      return store_error(r.error());
    return st;
  }
  /// Runs a statement that returns no rows.
  template <class... Args>
  Result<void> run(std::string_view sql, const Args&... args) {
    LAB_TRY_ASSIGN(shared::sqlite::Statement * st, query(sql, args...));
    if (auto r = st->run(); !r)
      return store_error(r.error());
    return {};
  }
  /// Steps a statement from query(); store_failed on error.
  static Result<bool> step(shared::sqlite::Statement& st);

  /// Adds one to the revision counter (inside the caller's transaction) and returns it.
  Result<std::int64_t> bump_revision();
  Result<std::int64_t> revision();

  Result<std::optional<std::string>> meta(std::string_view key);
  Result<void> set_meta(std::string_view key, std::string_view value);

 private:
  explicit Store(shared::sqlite::Database db) : db_(std::move(db)) {}
  Result<shared::sqlite::Statement*> prepare(std::string_view sql);

  shared::sqlite::Database db_;
  std::map<std::string, shared::sqlite::Statement, std::less<>> statements_;
};

}  // namespace lab::bootstrap::coordinator
