#include "bootstrap/audit/chain.hpp"

#include "shared/crypto/encoding.hpp"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

#include <utility>

namespace lab::bootstrap::audit {
namespace {

namespace cr = shared::crypto;

constexpr std::string_view kHeadDomain = "lab-audit-head-v1";

std::string row(std::int64_t seq) {
  return "row " + std::to_string(seq);
}

}  // namespace

std::string canonical_row(std::int64_t seq, std::int64_t at, std::string_view actor,
                          std::string_view address, std::string_view action,
                          std::string_view subject, std::string_view detail) {
  const boost::json::array a{seq, at, actor, address, action, subject, detail};
  return boost::json::serialize(a);
}

cr::Digest chain_hash(const cr::Digest& prev, std::string_view canonical) {
  cr::Sha256 h;
  h.update(cr::ByteView(prev));
  h.update(canonical);
  return h.finish();
}

std::string empty_chain_hash() {
  return cr::hex_encode(cr::Digest{});
}

std::string head_text(const SignedHead& head) {
  std::string out(kHeadDomain);
  out += '\n';
  out += std::to_string(head.seq);
  out += '\n';
  out += head.hash;
  out += '\n';
  out += std::to_string(head.at);
  return out;
}

void sign_head(SignedHead& head, const cr::Ed25519PrivateKey& key) {
  const cr::Signature sig = key.sign(cr::as_bytes(head_text(head)));
  head.signature = cr::base64url_encode(sig);
}

bool head_signature_ok(const SignedHead& head, const cr::Ed25519PublicKey& key) {
  auto sig = cr::base64url_decode(head.signature);
  return sig && key.verify(cr::as_bytes(head_text(head)), *sig);
}

bool ChainWalker::add(std::int64_t seq, std::string_view canonical, std::string_view stored_hash) {
  if (!check_.ok)
    return false;
  if (seq != expected_) {
    fail(expected_, row(expected_) + " missing");
    return false;
  }
  const cr::Digest hash = chain_hash(prev_, canonical);
  if (cr::hex_encode(hash) != stored_hash) {
    fail(seq, row(seq) + " modified");
    return false;
  }
  prev_ = hash;
  ++check_.rows;
  ++expected_;
  return true;
}

const Check& ChainWalker::finish(const SignedHead& head, const cr::Ed25519PublicKey& key) {
  if (!check_.ok)
    return check_;
  const std::int64_t last = expected_ - 1;
  const std::string named =
      "the signed head names " + row(head.seq) + ", the chain ends at " + row(last);
  // Until the signature verifies nothing the head says can be trusted, so it comes first.
  if (head.signature.empty()) {
    fail(0, "the head (" + row(head.seq) + ") is not signed");
  } else if (!head_signature_ok(head, key)) {
    fail(0, "the signed head (" + row(head.seq) + ") does not verify with the appliance's key");
  } else if (head.seq > last) {
    fail(last + 1, row(last + 1) + " missing: " + named);
  } else if (head.seq < last) {
    fail(head.seq + 1, row(head.seq + 1) + " is not signed: " + named);
  } else if (head.hash != cr::hex_encode(prev_)) {
    fail(last, row(last) + " does not match the signed head");
  }
  return check_;
}

void ChainWalker::fail(std::int64_t seq, std::string reason) {
  check_.ok = false;
  check_.first_bad_seq = seq;
  check_.reason = std::move(reason);
}

}  // namespace lab::bootstrap::audit
