#pragma once
// The audit trail's format, shared by the coordinator that writes it and the CLI that checks
// exports of it: how a row is hashed into the chain, the signed checkpoint of the chain's head,
// and the walk that finds where a chain breaks. Pure: no store, no clock, no files.
//
// The chain alone only shows changes by someone who cannot recompute it, and anyone with the
// rows can. The signed head is what someone with write access to the database but without the
// appliance's key (bundle.key, outside the database) cannot forge.
#include "shared/crypto/hash.hpp"
#include "shared/crypto/keys.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace lab::bootstrap::audit {

/// The canonical form a row's hash covers: a JSON array of its columns, the detail as the JSON
/// text stored with the row.
std::string canonical_row(std::int64_t seq, std::int64_t at, std::string_view actor,
                          std::string_view address, std::string_view action,
                          std::string_view subject, std::string_view detail);

/// SHA-256 over the previous row's hash and this row's canonical form. The first row follows
/// 32 zero bytes.
shared::crypto::Digest chain_hash(const shared::crypto::Digest& prev, std::string_view canonical);

/// The hash an empty chain ends with (64 zeros): what a head of seq 0 names.
std::string empty_chain_hash();

/// A checkpoint of the chain: its last row (seq and hash) as of `at`, signed with the
/// appliance's Ed25519 key. seq 0 with empty_chain_hash() is the empty chain.
struct SignedHead {
  std::int64_t seq = 0;
  std::string hash;       // hex SHA-256 of row `seq`
  std::int64_t at = 0;    // unix seconds: when it was signed
  std::string signature;  // base64url Ed25519 over head_text(); empty when unsigned
};

/// What the signature covers: "lab-audit-head-v1\n<seq>\n<hash>\n<at>". The prefix separates
/// it from everything else the same key signs (bundle and manifest envelopes begin "LABE").
std::string head_text(const SignedHead& head);
/// Sets head.signature.
void sign_head(SignedHead& head, const shared::crypto::Ed25519PrivateKey& key);
/// True only when head.signature is `key`'s signature over head_text(head).
[[nodiscard]] bool head_signature_ok(const SignedHead& head,
                                     const shared::crypto::Ed25519PublicKey& key);

/// Whether a chain holds and, if not, the first row to distrust.
struct Check {
  bool ok = true;
  std::int64_t rows = 0;           // rows that chained before the first break
  std::int64_t first_bad_seq = 0;  // 0 when ok, or when no one row is to blame (the signature)
  std::string reason;              // "row 17 modified", "row 18 missing", …
};

/// Walks a chain oldest first and stops at the first break.
class ChainWalker {
 public:
  /// The next row: its canonical form and the hash stored with it. False once the chain is
  /// broken, at this row or an earlier one; later rows are then ignored.
  bool add(std::int64_t seq, std::string_view canonical, std::string_view stored_hash);
  /// After the last row: the head must carry `key`'s signature and name the last row seen
  /// (seq and hash). Returns the outcome.
  const Check& finish(const SignedHead& head, const shared::crypto::Ed25519PublicKey& key);
  [[nodiscard]] const Check& check() const noexcept { return check_; }

 private:
  void fail(std::int64_t seq, std::string reason);

  shared::crypto::Digest prev_{};
  std::int64_t expected_ = 1;
  Check check_;
};

}  // namespace lab::bootstrap::audit
