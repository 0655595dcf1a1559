#pragma once
// The append-only, hash-chained audit trail. Each row's hash is SHA-256 over the previous
// row's hash and this row's canonical form, so a changed or removed row breaks the chain. The
// head (last seq and hash) lives in the meta table with the appliance's Ed25519 signature over
// it (bootstrap/audit/chain.hpp), re-signed with every row, so that someone who can write the
// database but not read bundle.key cannot rewrite rows and recompute the chain unnoticed.
#include "bootstrap/audit/chain.hpp"
#include "bootstrap/coordinator/coordinator.hpp"
#include "bootstrap/coordinator/store.hpp"
#include "shared/crypto/keys.hpp"

#include <boost/json/object.hpp>

#include <filesystem>
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
/// change it records) and moves the chain head kept in the meta table. Signs the new head with
/// `key` only when the head it extends carries `key`'s signature and names the last row:
/// otherwise the log was changed behind the coordinator's back, and signing now would make
/// that change pass verification. The row is still written (a change is never refused for
/// it); verification keeps failing.
Result<void> append_audit(Store& store, const AuditEntry& entry,
                          const shared::crypto::Ed25519PrivateKey& key);

/// The head as stored; seq 0 and the empty chain's hash when nothing was ever appended, an
/// empty signature when it was never signed.
Result<audit::SignedHead> read_audit_head(Store& store);

/// Run at every start, before anything is appended. A log whose head was never signed (a new
/// appliance, or one upgraded from a version that did not sign) gets its current head signed,
/// and, when it has rows, an "audit.sign" row saying how many rows predate signing. `marker`
/// (a file outside the database) is created once the head is signed: if it exists while the
/// head is unsigned, the signature was removed, which verification reports, and the head is
/// left unsigned rather than blessing whatever was done.
Result<void> start_audit_signing(Store& store, const shared::crypto::Ed25519PrivateKey& key,
                                 const std::filesystem::path& marker, std::int64_t now);

/// Rows with seq > after_seq, oldest first, at most `limit`.
Result<std::vector<AuditEvent>> read_audit(Store& store, std::int64_t after_seq, std::size_t limit);

/// Walks the chain: the first row whose hash does not match ("row 17 modified"), the first gap
/// in seq ("row 18 missing"); then the head must carry `key`'s signature and name the last row
/// (seq and hash), which a rewritten and re-chained log, or one cut short, does not.
Result<AuditCheck> verify_audit_chain(Store& store, const shared::crypto::Ed25519PublicKey& key);

}  // namespace lab::bootstrap::coordinator
