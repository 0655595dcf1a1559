#include "bootstrap/coordinator/audit.hpp"

#include "shared/crypto/encoding.hpp"
#include "shared/crypto/hash.hpp"
#include "shared/json/json.hpp"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

namespace lab::bootstrap::coordinator {
namespace {

namespace cr = shared::crypto;
namespace sq = shared::sqlite;

constexpr std::string_view kHeadSeq = "audit_head_seq";
constexpr std::string_view kHeadHash = "audit_head_hash";

// The canonical form hashed for a row: a JSON array of its columns, the detail as stored text.
std::string canonical(std::int64_t seq, std::int64_t at, std::string_view actor,
                      std::string_view address, std::string_view action, std::string_view subject,
                      std::string_view detail) {
  boost::json::array a{seq, at, actor, address, action, subject, detail};
  return boost::json::serialize(a);
}

cr::Digest chain(const cr::Digest& prev, std::string_view row) {
  cr::Sha256 h;
  h.update(cr::ByteView(prev));
  h.update(row);
  return h.finish();
}

Result<cr::Digest> head_hash(Store& store) {
  LAB_TRY_ASSIGN(auto hex, store.meta(kHeadHash));
  cr::Digest d{};
  if (!hex)
    return d;
  auto raw = cr::hex_decode(*hex);
  if (!raw || raw->size() != d.size())
    return Error(CoordinatorError::store_failed, "audit head hash is not 32 bytes of hex");
  std::copy(raw->begin(), raw->end(), d.begin());
  return d;
}

}  // namespace

Result<void> append_audit(Store& store, const AuditEntry& e) {
  LAB_TRY_ASSIGN(auto seq_text, store.meta(kHeadSeq));
  const std::int64_t seq = (seq_text ? std::stoll(*seq_text) : 0) + 1;
  LAB_TRY_ASSIGN(cr::Digest prev, head_hash(store));
  const std::string detail = boost::json::serialize(e.detail);
  const cr::Digest hash =
      chain(prev, canonical(seq, e.at, e.actor.name, e.actor.address, e.action, e.subject, detail));
  const std::string hex = cr::hex_encode(hash);
  LAB_TRY(
      store.run("INSERT INTO audit (seq, at, actor, address, action, subject, detail, hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                seq, e.at, e.actor.name, e.actor.address, e.action, e.subject, detail, hex));
  LAB_TRY(store.set_meta(kHeadSeq, std::to_string(seq)));
  return store.set_meta(kHeadHash, hex);
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

Result<AuditCheck> verify_audit_chain(Store& store) {
  LAB_TRY_ASSIGN(sq::Statement * st,
                 store.query("SELECT seq, at, actor, address, action, subject, detail, hash "
                             "FROM audit ORDER BY seq"));
  AuditCheck check;
  cr::Digest prev{};
  std::int64_t expected = 1;
  auto fail = [&](std::int64_t seq, const std::string& why) {
    check.ok = false;
    check.first_bad_seq = seq;
    check.reason = "row " + std::to_string(seq) + " " + why;
  };
  for (;;) {
    LAB_TRY_ASSIGN(bool row, Store::step(*st));
    if (!row)
      break;
    const std::int64_t seq = st->int64(0);
    if (seq != expected) {
      fail(expected, "missing");
      st->reset();
      return check;
    }
    const cr::Digest hash = chain(prev, canonical(seq, st->int64(1), st->text(2), st->text(3),
                                                  st->text(4), st->text(5), st->text(6)));
    if (cr::hex_encode(hash) != st->text(7)) {
      fail(seq, "modified");
      st->reset();
      return check;
    }
    prev = hash;
    ++check.rows;
    ++expected;
  }
  // Rows cut from the end leave no gap; the head recorded with every append shows them.
  LAB_TRY_ASSIGN(auto head, store.meta(kHeadSeq));
  if (head && std::stoll(*head) >= expected)
    fail(expected, "missing");
  return check;
}

}  // namespace lab::bootstrap::coordinator
