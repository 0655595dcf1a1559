#include "bootstrap/coordinator/audit.hpp"

#include "bootstrap/coordinator/identity.hpp"
#include "shared/crypto/encoding.hpp"
#include "shared/crypto/hash.hpp"
#include "shared/json/json.hpp"

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <charconv>
#include <utility>

namespace lab::bootstrap::coordinator {
namespace {

namespace cr = shared::crypto;
namespace sq = shared::sqlite;

// The head: seq and hash since the first version; when and the signature since heads are
// signed. All four move together, in the transaction that appends the row.
constexpr std::string_view kHeadSeq = "audit_head_seq";
constexpr std::string_view kHeadHash = "audit_head_hash";
constexpr std::string_view kHeadAt = "audit_head_at";
constexpr std::string_view kHeadSignature = "audit_head_signature";

Result<cr::Digest> digest_of(const std::string& hex) {
  cr::Digest d{};
  auto raw = cr::hex_decode(hex);
  if (!raw || raw->size() != d.size())
    return Error(CoordinatorError::store_failed, "audit head hash is not 32 bytes of hex");
  std::copy(raw->begin(), raw->end(), d.begin());
  return d;
}

Result<std::int64_t> int_meta(Store& store, std::string_view key) {
  LAB_TRY_ASSIGN(auto text, store.meta(key));
  if (!text)
    return 0;
  std::int64_t v = 0;
  const auto* end = text->data() + text->size();
  if (auto [p, ec] = std::from_chars(text->data(), end, v); ec != std::errc() || p != end)
    return Error(CoordinatorError::store_failed, std::string(key) + " is not a number");
  return v;
}

Result<void> write_head(Store& store, const audit::SignedHead& head) {
  LAB_TRY(store.set_meta(kHeadSeq, std::to_string(head.seq)));
  LAB_TRY(store.set_meta(kHeadHash, head.hash));
  LAB_TRY(store.set_meta(kHeadAt, std::to_string(head.at)));
  return store.set_meta(kHeadSignature, head.signature);
}

// The seq and hash of the last row, (0, empty chain) when there is none.
Result<std::pair<std::int64_t, std::string>> last_row(Store& store) {
  LAB_TRY_ASSIGN(sq::Statement * st,
                 store.query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"));
  LAB_TRY_ASSIGN(bool row, Store::step(*st));
  if (!row)
    return std::pair<std::int64_t, std::string>{0, audit::empty_chain_hash()};
  std::pair<std::int64_t, std::string> out{st->int64(0), st->text(1)};
  st->reset();
  return out;
}

// Whether the head is one this key signed and the rows still end where it says.
Result<bool> head_is_ours(Store& store, const audit::SignedHead& head,
                          const cr::Ed25519PublicKey& key) {
  if (!audit::head_signature_ok(head, key))
    return false;
  LAB_TRY_ASSIGN(auto last, last_row(store));
  return last.first == head.seq && last.second == head.hash;
}

}  // namespace

Result<audit::SignedHead> read_audit_head(Store& store) {
  audit::SignedHead head;
  LAB_TRY_ASSIGN(head.seq, int_meta(store, kHeadSeq));
  LAB_TRY_ASSIGN(auto hash, store.meta(kHeadHash));
  head.hash = hash ? *hash : audit::empty_chain_hash();
  LAB_TRY_ASSIGN(head.at, int_meta(store, kHeadAt));
  LAB_TRY_ASSIGN(auto signature, store.meta(kHeadSignature));
  if (signature)
    head.signature = *signature;
  return head;
}

Result<void> append_audit(Store& store, const AuditEntry& e, const cr::Ed25519PrivateKey& key) {
  LAB_TRY_ASSIGN(audit::SignedHead head, read_audit_head(store));
  LAB_TRY_ASSIGN(const bool ours, head_is_ours(store, head, key.public_key()));
  LAB_TRY_ASSIGN(const cr::Digest prev, digest_of(head.hash));
  const std::int64_t seq = head.seq + 1;
  const std::string detail = boost::json::serialize(e.detail);
  const cr::Digest hash = audit::chain_hash(
      prev,
      audit::canonical_row(seq, e.at, e.actor.name, e.actor.address, e.action, e.subject, detail));
  const std::string hex = cr::hex_encode(hash);
  LAB_TRY(
      store.run("INSERT INTO audit (seq, at, actor, address, action, subject, detail, hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                seq, e.at, e.actor.name, e.actor.address, e.action, e.subject, detail, hex));
  if (!ours) {
    // The old signature stays, over a head that is no longer the stored one.
    LAB_TRY(store.set_meta(kHeadSeq, std::to_string(seq)));
    return store.set_meta(kHeadHash, hex);
  }
  audit::SignedHead next{seq, hex, e.at, {}};
  audit::sign_head(next, key);
  return write_head(store, next);
}

Result<void> start_audit_signing(Store& store, const cr::Ed25519PrivateKey& key,
                                 const std::filesystem::path& marker, std::int64_t now) {
  std::error_code ec;
  const bool signed_before = std::filesystem::exists(marker, ec);
  LAB_TRY_ASSIGN(audit::SignedHead head, read_audit_head(store));
  if (head.signature.empty() && !signed_before) {
    LAB_TRY_ASSIGN(auto tx, store.begin());
    const std::int64_t unsigned_rows = head.seq;
    head.at = now;
    audit::sign_head(head, key);
    LAB_TRY(write_head(store, head));
    if (unsigned_rows > 0) {
      // Rows written before heads were signed are only as trustworthy as the database was
      // until now; the row says from where the signature vouches for the log.
      LAB_TRY(append_audit(store,
                           {now,
                            {"system", ""},
                            "audit.sign",
                            "",
                            {{"unsigned_rows", unsigned_rows}, {"key", key.public_key().key_id()}}},
                           key));
    }
    if (auto r = tx.commit(); !r)
      return store_error(r.error());
  } else if (head.signature.empty()) {
    return {};
  }
  // Written after the commit: a crash in between only means it is written at the next start.
  if (!signed_before) {
    LAB_TRY(write_file_atomic(marker,
                              "The audit trail's head in coordinator.db is signed with bundle.key;"
                              " lab will not sign an unsigned head again while this file exists."
                              "\n",
                              0644));
  }
  return {};
}

Result<std::vector<AuditEvent>> read_audit(Store& store, std::int64_t after_seq,
                                           std::size_t limit) {
  LAB_TRY_ASSIGN(sq::Statement * st,
                 store.query("SELECT seq, at, actor, address, action, subject, detail, hash "
                             "FROM audit WHERE seq > ? ORDER BY seq LIMIT ?",
                             after_seq, static_cast<std::int64_t>(limit)));
  std::vector<AuditEvent> out;
  for (;;) {
    LAB_TRY_ASSIGN(bool row, Store::step(*st));
    if (!row)
      break;
    AuditEvent ev;
    ev.seq = st->int64(0);
    ev.at = st->int64(1);
    ev.actor = st->text(2);
    ev.address = st->text(3);
    ev.action = st->text(4);
    ev.subject = st->text(5);
    if (auto detail = shared::json::parse_object(st->text(6)))
      ev.detail = std::move(*detail);
    ev.hash = st->text(7);
    out.push_back(std::move(ev));
  }
  return out;
}

Result<AuditCheck> verify_audit_chain(Store& store, const cr::Ed25519PublicKey& key) {
  LAB_TRY_ASSIGN(sq::Statement * st,
                 store.query("SELECT seq, at, actor, address, action, subject, detail, hash "
                             "FROM audit ORDER BY seq"));
  audit::ChainWalker walker;
  for (;;) {
    LAB_TRY_ASSIGN(bool row, Store::step(*st));
    if (!row)
      break;
    const std::int64_t seq = st->int64(0);
    if (!walker.add(seq,
                    audit::canonical_row(seq, st->int64(1), st->text(2), st->text(3), st->text(4),
                                         st->text(5), st->text(6)),
                    st->text(7))) {
      st->reset();
      break;
    }
  }
  LAB_TRY_ASSIGN(audit::SignedHead head, read_audit_head(store));
  const audit::Check& c = walker.finish(head, key);
  return AuditCheck{c.ok, c.rows, c.first_bad_seq, c.reason};
}

}  // namespace lab::bootstrap::coordinator
