#include "tests/support/audit_forgery.hpp"

#include "shared/crypto/encoding.hpp"
#include "shared/crypto/hash.hpp"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace lab::tests {
namespace {

namespace cr = shared::crypto;

std::string column_text(sqlite3_stmt* st, int i) {
  const auto* p = sqlite3_column_text(st, i);
  return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p));
}

bool exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (err != nullptr ? err : "");
  sqlite3_free(err);
  return rc == SQLITE_OK;
}

}  // namespace

void rewrite_audit(const std::filesystem::path& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK) << db_path;
  ASSERT_TRUE(exec(db, "BEGIN IMMEDIATE"));
  ASSERT_TRUE(exec(db, sql));

  sqlite3_stmt* rows = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "SELECT seq, at, actor, address, action, subject, detail "
                               "FROM audit ORDER BY seq",
                               -1, &rows, nullptr),
            SQLITE_OK);
  // The chain as audit.cpp builds it: SHA-256 over the previous hash and the row's columns as
  // a JSON array, the first row chained to 32 zero bytes.
  std::vector<std::pair<std::int64_t, std::string>> hashes;
  cr::Digest prev{};
  while (sqlite3_step(rows) == SQLITE_ROW) {
    const std::int64_t seq = sqlite3_column_int64(rows, 0);
    const boost::json::array canonical{seq,
                                       sqlite3_column_int64(rows, 1),
                                       column_text(rows, 2),
                                       column_text(rows, 3),
                                       column_text(rows, 4),
                                       column_text(rows, 5),
                                       column_text(rows, 6)};
    cr::Sha256 h;
    h.update(cr::ByteView(prev));
    h.update(boost::json::serialize(canonical));
    prev = h.finish();
    hashes.emplace_back(seq, cr::hex_encode(prev));
  }
  sqlite3_finalize(rows);

  for (const auto& [seq, hash] : hashes) {
    ASSERT_TRUE(
        exec(db, "UPDATE audit SET hash = '" + hash + "' WHERE seq = " + std::to_string(seq)));
  }
  const std::int64_t head = hashes.empty() ? 0 : hashes.back().first;
  const std::string head_hash = hashes.empty() ? std::string() : hashes.back().second;
  ASSERT_TRUE(exec(
      db, "UPDATE meta SET value = '" + std::to_string(head) + "' WHERE key = 'audit_head_seq'"));
  ASSERT_TRUE(
      exec(db, "UPDATE meta SET value = '" + head_hash + "' WHERE key = 'audit_head_hash'"));
  ASSERT_TRUE(exec(db, "COMMIT"));
  sqlite3_close(db);
}

}  // namespace lab::tests
