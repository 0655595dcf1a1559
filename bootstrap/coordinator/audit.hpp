#pragma once
// The append-only, hash-chained audit trail. Each row's hash is SHA-256 over the previous
// row's hash and this row's canonical form, so a changed or removed row breaks the chain.
#include "bootstrap/coordinator/coordinator.hpp"
#include "bootstrap/coordinator/store.hpp"

#include <boost/json/object.hpp>

#include <string>
#include <vector>

namespace lab::bootstrap::coordinator {

struct AuditEntry {
  std::int64_t at = 0;
  Actor actor;
  std::string action;
  std::string subject;
  boost::json::object detail;
};

/// Appends one row inside the caller's transaction (so it commits or rolls back with the
/// change it records) and moves the chain head kept in the meta table.
Result<void> append_audit(Store& store, const AuditEntry& entry);

/// Rows with seq > after_seq, oldest first, at most `limit`.
Result<std::vector<AuditEvent>> read_audit(Store& store, std::int64_t after_seq, std::size_t limit);

/// Walks the chain: the first row whose hash does not match ("row 17 modified"), the first gap
/// in seq ("row 18 missing"), or rows missing at the end compared with the recorded head.
Result<AuditCheck> verify_audit_chain(Store& store);

}  // namespace lab::bootstrap::coordinator
