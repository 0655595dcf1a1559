#pragma once
// What someone with write access to coordinator.db, but not to the appliance's key, can do to
// the audit trail: change rows with SQL and then recompute the hash chain so that it holds
// together again. The chain's algorithm is no secret (bootstrap/coordinator/audit.cpp), so this
// helper has its own copy of it: it is the attacker's, not the coordinator's.
#include <filesystem>
#include <string>

namespace lab::tests {

/// Runs `sql` on the database at `db` (lab serve stopped, or a second connection), then
/// recomputes every audit row's hash in seq order and moves the head in the meta table
/// (audit_head_seq, audit_head_hash) to the last row, leaving every other meta key alone.
/// Reports SQLite errors as test failures.
void rewrite_audit(const std::filesystem::path& db, const std::string& sql);

}  // namespace lab::tests
