#include "shared/protocol/protocol.hpp"

#include "shared/crypto/encoding.hpp"
#include "shared/crypto/hash.hpp"
#include "shared/crypto/random.hpp"
#include "shared/json/json.hpp"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

namespace lab::shared::protocol {
namespace {

namespace bj = boost::json;

Error bad(ProtocolError code, const Error& cause, std::string_view what) {
  return {code, fmt::format("{}: {}", what, cause.detail())};
}

template <class T>
Result<T> field(Result<T> r, std::string_view what) {
  if (!r)
    return bad(ProtocolError::bad_message, r.error(), what);
  return r;
}

bj::array strings(const std::vector<std::string>& v) {
  bj::array a;
  a.reserve(v.size());
  for (const auto& s : v)
    a.emplace_back(s);
  return a;
}

bj::array peer_array(const std::vector<Peer>& peers) {
  bj::array a;
  a.reserve(peers.size());
  for (const auto& p : peers)
    a.push_back(bj::object{{"node_id", p.node_id}, {"address", p.address}});
  return a;
}

Result<std::vector<Peer>> parse_peers(const bj::array& items, std::string_view what) {
  std::vector<Peer> out;
  out.reserve(items.size());
  for (const auto& item : items) {
    if (!item.is_object())
      return Error(ProtocolError::bad_message, fmt::format("{}: not an object", what));
    Peer p;
    LAB_TRY_ASSIGN(p.node_id, field(json::get_string(item.as_object(), "node_id"), what));
    LAB_TRY_ASSIGN(p.address, field(json::get_string(item.as_object(), "address"), what));
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace

const boost::system::error_category& protocol_category() noexcept {
  static const ErrorCategory<ProtocolError> kCategory("lab.protocol",
                                                      [](ProtocolError e) noexcept -> const char* {
                                                        switch (e) {
                                                          case ProtocolError::bad_join_string:
                                                            return "invalid join string";
                                                          case ProtocolError::bad_token:
                                                            return "invalid token";
                                                          case ProtocolError::bad_message:
                                                            return "invalid message";
                                                        }
                                                        return "protocol error";
                                                      });
  return kCategory;
}

// ---- Tokens ---------------------------------------------------------------------------------

Result<Token> parse_token(std::string_view text) {
  const auto dot = text.find('.');
  if (dot == std::string_view::npos) {
    return Error(ProtocolError::bad_token, "token must be <id>.<secret>");
  }
  const std::string_view id = text.substr(0, dot);
  const std::string_view secret = text.substr(dot + 1);
  auto id_bytes = crypto::hex_decode(id);
  if (!id_bytes || id_bytes->size() != 8) {
    return Error(ProtocolError::bad_token, "token id must be 16 hex characters");
  }
  auto secret_bytes = crypto::base64url_decode(secret);
  if (!secret_bytes || secret_bytes->size() != 32) {
    return Error(ProtocolError::bad_token, "token secret must be 32 bytes of base64url");
  }
  return Token{crypto::hex_encode(*id_bytes), std::string(secret)};
}

Result<Token> make_token() {
  LAB_TRY_ASSIGN(crypto::Bytes id, crypto::random_bytes(8));
  LAB_TRY_ASSIGN(crypto::Bytes secret, crypto::random_bytes(32));
  return Token{crypto::hex_encode(id), crypto::base64url_encode(secret)};
}

// ---- Join strings ---------------------------------------------------------------------------

std::string format_join_string(const JoinString& js) {
  bj::object o;
  o["url"] = js.url;
  o["token"] = js.token.to_string();
  o["pin"] = js.ca_pin;
  return "lab1:" + crypto::base64url_encode(crypto::as_bytes(bj::serialize(o)));
}

Result<JoinString> parse_join_string(std::string_view text) {
  auto fail = [](std::string_view why) {
    return Error(
        ProtocolError::bad_join_string,
        fmt::format("{} (a join string looks like lab1:eyJ…, from 'lab token create')", why));
  };
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  if (!text.starts_with("lab1:"))
    return fail("it does not start with 'lab1:'");
  if (text.size() > 4096)
    return fail("it is too long");
  auto raw = crypto::base64url_decode(text.substr(5));
  if (!raw)
    return fail("it is truncated or damaged");
  auto o = json::parse_object(crypto::as_chars(*raw));
  if (!o)
    return fail("it is truncated or damaged");
  auto url = json::get_string(*o, "url");
  auto token = json::get_string(*o, "token");
  auto pin = json::get_string(*o, "pin");
  if (!url || !token || !pin)
    return fail("a part is missing");
  if (!url->starts_with("https://"))
    return fail("the coordinator URL is not https");
  if (!pin->starts_with("sha256:") || pin->size() != 7 + 43)
    return fail("the CA pin is malformed");
  auto t = parse_token(*token);
  if (!t)
    return fail(t.error().detail());
  return JoinString{std::move(*url), std::move(*t), std::move(*pin)};
}

// ---- Join messages --------------------------------------------------------------------------

std::string key_proof_message(std::string_view purpose, std::string_view token_id,
                              std::string_view csr_pem) {
  return fmt::format("lab-key-proof-v1\n{}\n{}\n{}", purpose, token_id,
                     crypto::hex_encode(crypto::sha256(csr_pem)));
}

bj::object to_json(const KeyProof& p) {
  return bj::object{{"certificate", p.certificate_pem}, {"signature", p.signature}};
}

Result<KeyProof> key_proof_from_json(const bj::object& o) {
  KeyProof p;
  LAB_TRY_ASSIGN(p.certificate_pem, field(json::get_string(o, "certificate"), "proof"));
  LAB_TRY_ASSIGN(p.signature, field(json::get_string(o, "signature"), "proof"));
  return p;
}

namespace {

// The optional "proof" member of a join or renewal request.
Result<std::optional<KeyProof>> optional_proof(const bj::object& o, std::string_view what) {
  const auto* p = o.if_contains("proof");
  if (p == nullptr || p->is_null())
    return std::optional<KeyProof>();
  if (!p->is_object())
    return Error(ProtocolError::bad_message,
                 fmt::format("{}: field 'proof': expected an object", what));
  LAB_TRY_ASSIGN(auto proof, key_proof_from_json(p->as_object()));
  return std::optional<KeyProof>(std::move(proof));
}

}  // namespace

bj::object to_json(const RenewRequest& r) {
  bj::object o{{"csr", r.csr_pem}};
  if (r.proof)
    o["proof"] = to_json(*r.proof);
  return o;
}

Result<RenewRequest> renew_request_from_json(const bj::object& o) {
  RenewRequest r;
  LAB_TRY_ASSIGN(r.csr_pem, field(json::get_string(o, "csr"), "renew request"));
  LAB_TRY_ASSIGN(r.proof, optional_proof(o, "renew request"));
  return r;
}

bj::object to_json(const JoinRequest& r) {
  bj::object o;
  o["token"] = r.token;
  o["csr"] = r.csr_pem;
  o["sealing_key"] = r.sealing_key;
  o["hostname"] = r.hostname;
  o["agent_version"] = r.agent_version;
  o["facts"] = r.facts;
  if (r.proof)
    o["proof"] = to_json(*r.proof);
  return o;
}

Result<JoinRequest> join_request_from_json(const bj::object& o) {
  JoinRequest r;
  LAB_TRY_ASSIGN(r.token, field(json::get_string(o, "token"), "join request"));
  LAB_TRY_ASSIGN(r.csr_pem, field(json::get_string(o, "csr"), "join request"));
  LAB_TRY_ASSIGN(r.sealing_key, field(json::get_string(o, "sealing_key"), "join request"));
  LAB_TRY_ASSIGN(auto hostname, field(json::optional_string(o, "hostname"), "join request"));
  LAB_TRY_ASSIGN(auto version, field(json::optional_string(o, "agent_version"), "join request"));
  r.hostname = hostname.value_or("");
  r.agent_version = version.value_or("");
  if (const auto* f = o.if_contains("facts"); f != nullptr && !f->is_null()) {
    if (!f->is_object()) {
      return Error(ProtocolError::bad_message, "join request: field 'facts': expected an object");
    }
    r.facts = f->as_object();
  }
  LAB_TRY_ASSIGN(r.proof, optional_proof(o, "join request"));
  return r;
}

bj::object to_json(const JoinResponse& r) {
  bj::object o;
  o["node_id"] = r.node_id;
  o["name"] = r.name;
  o["certificate"] = r.certificate_pem;
  o["ca"] = r.ca_pem;
  o["bundle_key"] = r.bundle_key;
  o["state"] = r.state;
  return o;
}

Result<JoinResponse> join_response_from_json(const bj::object& o) {
  JoinResponse r;
  LAB_TRY_ASSIGN(r.node_id, field(json::get_string(o, "node_id"), "join response"));
  LAB_TRY_ASSIGN(r.name, field(json::get_string(o, "name"), "join response"));
  LAB_TRY_ASSIGN(r.certificate_pem, field(json::get_string(o, "certificate"), "join response"));
  LAB_TRY_ASSIGN(r.ca_pem, field(json::get_string(o, "ca"), "join response"));
  LAB_TRY_ASSIGN(r.bundle_key, field(json::get_string(o, "bundle_key"), "join response"));
  LAB_TRY_ASSIGN(r.state, field(json::get_string(o, "state"), "join response"));
  return r;
}

// ---- Bundle ---------------------------------------------------------------------------------

std::string sealed_secret_aad(std::string_view node_id, std::string_view name,
                              std::int64_t version) {
  return fmt::format("lab-secret-v1|{}|{}|{}", node_id, name, version);
}

std::string serialize(const Bundle& b) {
  bj::object o;
  o["node_id"] = b.node_id;
  o["name"] = b.name;
  o["revision"] = b.revision;
  o["issued_at"] = b.issued_at;
  o["state"] = b.state;
  bj::object labels;
  for (const auto& [k, v] : b.labels)
    labels[k] = v;
  o["labels"] = std::move(labels);
  o["groups"] = strings(b.groups);
  bj::array secrets;
  for (const auto& s : b.secrets) {
    secrets.push_back(bj::object{{"name", s.name}, {"version", s.version}, {"sealed", s.sealed}});
  }
  o["secrets"] = std::move(secrets);
  o["revoked_serials"] = strings(b.revoked_serials);
  o["peers"] = peer_array(b.peers);
  if (!b.gossip.empty())
    o["gossip"] = peer_array(b.gossip);
  if (!b.checks.empty()) {
    bj::array checks;
    for (const auto& c : b.checks)
      checks.push_back(check_to_json(c));
    o["checks"] = std::move(checks);
  }
  return bj::serialize(o);
}

Result<Bundle> parse_bundle(std::string_view text) {
  auto parsed = json::parse_object(text);
  if (!parsed)
    return bad(ProtocolError::bad_message, parsed.error(), "bundle");
  const bj::object& o = *parsed;
  Bundle b;
  LAB_TRY_ASSIGN(b.node_id, field(json::get_string(o, "node_id"), "bundle"));
  LAB_TRY_ASSIGN(b.name, field(json::get_string(o, "name"), "bundle"));
  LAB_TRY_ASSIGN(b.revision, field(json::get_int(o, "revision"), "bundle"));
  LAB_TRY_ASSIGN(b.issued_at, field(json::get_int(o, "issued_at"), "bundle"));
  LAB_TRY_ASSIGN(b.state, field(json::get_string(o, "state"), "bundle"));
  LAB_TRY_ASSIGN(const bj::object* labels, field(json::get_object(o, "labels"), "bundle"));
  for (const auto& kv : *labels) {
    if (!kv.value().is_string()) {
      return Error(ProtocolError::bad_message,
                   fmt::format("bundle: label '{}' is not a string", std::string_view(kv.key())));
    }
    b.labels.emplace(std::string(kv.key()), std::string(kv.value().as_string()));
  }
  LAB_TRY_ASSIGN(b.groups, field(json::get_strings(o, "groups"), "bundle"));
  LAB_TRY_ASSIGN(const bj::array* secrets, field(json::get_array(o, "secrets"), "bundle"));
  for (const auto& item : *secrets) {
    if (!item.is_object())
      return Error(ProtocolError::bad_message, "bundle: a secret is not an object");
    SealedSecret s;
    LAB_TRY_ASSIGN(s.name, field(json::get_string(item.as_object(), "name"), "bundle secret"));
    LAB_TRY_ASSIGN(s.version, field(json::get_int(item.as_object(), "version"), "bundle secret"));
    LAB_TRY_ASSIGN(s.sealed, field(json::get_string(item.as_object(), "sealed"), "bundle secret"));
    b.secrets.push_back(std::move(s));
  }
  LAB_TRY_ASSIGN(b.revoked_serials, field(json::get_strings(o, "revoked_serials"), "bundle"));
  LAB_TRY_ASSIGN(const bj::array* peers, field(json::get_array(o, "peers"), "bundle"));
  LAB_TRY_ASSIGN(b.peers, parse_peers(*peers, "bundle peer"));
  if (const auto* gossip = o.if_contains("gossip")) {
    if (!gossip->is_array())
      return Error(ProtocolError::bad_message, "bundle: field 'gossip': expected an array");
    LAB_TRY_ASSIGN(b.gossip, parse_peers(gossip->get_array(), "bundle gossip peer"));
  }
  if (const auto* checks = o.if_contains("checks")) {
    if (!checks->is_array() || checks->get_array().size() > kMaxChecks)
      return Error(ProtocolError::bad_message,
                   "bundle: field 'checks': expected an array of at most 64 checks");
    for (const auto& item : checks->get_array()) {
      if (!item.is_object())
        return Error(ProtocolError::bad_message, "bundle: a check is not an object");
      LAB_TRY_ASSIGN(auto c, check_from_json(item.get_object()));
      b.checks.push_back(std::move(c));
    }
  }
  return b;
}

// ---- Fleet envelope -------------------------------------------------------------------------

std::string serialize(const Fleet& f) {
  bj::object o;
  o["revision"] = f.revision;
  o["issued_at"] = f.issued_at;
  o["revoked_serials"] = strings(f.revoked_serials);
  o["revoked_nodes"] = strings(f.revoked_nodes);
  return bj::serialize(o);
}

Result<Fleet> parse_fleet(std::string_view text) {
  auto parsed = json::parse_object(text);
  if (!parsed)
    return bad(ProtocolError::bad_message, parsed.error(), "fleet");
  const bj::object& o = *parsed;
  Fleet f;
  LAB_TRY_ASSIGN(f.revision, field(json::get_int(o, "revision"), "fleet"));
  LAB_TRY_ASSIGN(f.issued_at, field(json::get_int(o, "issued_at"), "fleet"));
  LAB_TRY_ASSIGN(f.revoked_serials, field(json::get_strings(o, "revoked_serials"), "fleet"));
  LAB_TRY_ASSIGN(f.revoked_nodes, field(json::get_strings(o, "revoked_nodes"), "fleet"));
  return f;
}

// ---- Kept envelopes -------------------------------------------------------------------------

bj::object to_json(const Kept& k) {
  bj::array envelopes;
  envelopes.reserve(k.envelopes.size());
  for (const auto& e : k.envelopes)
    envelopes.emplace_back(crypto::base64url_encode(e));
  return bj::object{{"revision", k.revision},
                    {"node_ids", strings(k.node_ids)},
                    {"envelopes", std::move(envelopes)}};
}

Result<Kept> kept_from_json(const bj::object& o) {
  Kept k;
  LAB_TRY_ASSIGN(k.revision, field(json::get_int(o, "revision"), "kept"));
  LAB_TRY_ASSIGN(k.node_ids, field(json::get_strings(o, "node_ids"), "kept"));
  LAB_TRY_ASSIGN(auto envelopes, field(json::get_strings(o, "envelopes"), "kept"));
  for (const auto& e : envelopes) {
    auto raw = crypto::base64url_decode(e);
    if (!raw)
      return Error(ProtocolError::bad_message, "kept: an envelope is not base64url");
    k.envelopes.push_back(std::move(*raw));
  }
  return k;
}

}  // namespace lab::shared::protocol
