// Join (token → node + client certificate), re-enrolment, renewal and agent authentication.
//
// Who may enrol as what: a join makes a new node unless the caller proves it is an existing
// one (a signature with the key of its certificate, also one expired less than renew_grace
// ago) or an operator armed a reinstall of the node whose MAC the boot token was minted for.
// The facts an agent reports (MACs, hostname) are kept as facts and never decide this.
#include "bootstrap/coordinator/audit.hpp"
#include "bootstrap/coordinator/coordinator_impl.hpp"
#include "pxe/events/event.hpp"
#include "shared/crypto/encoding.hpp"
#include "shared/crypto/hash.hpp"
#include "shared/crypto/random.hpp"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <cctype>

namespace lab::bootstrap::coordinator {
namespace {

namespace cr = shared::crypto;
namespace lb = shared::labels;
namespace sq = shared::sqlite;
namespace proto = shared::protocol;
using namespace std::chrono_literals;

constexpr std::size_t kMaxHostname = 253;
constexpr auto kBackdate = 5min;

// A node name from the hostname the agent reports: lower case, [a-z0-9.-], at most 63
// characters, starting and ending with a letter or digit.
std::string name_from_hostname(std::string_view hostname) {
  std::string out;
  for (const char c : hostname.substr(0, lb::kMaxNameLength)) {
    const auto u = static_cast<unsigned char>(c);
    out +=
        (std::isalnum(u) != 0 || c == '.' || c == '-') ? static_cast<char>(std::tolower(u)) : '-';
  }
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  while (!out.empty() && !alnum(out.back()))
    out.pop_back();
  const auto first = std::find_if(out.begin(), out.end(), alnum);
  out.erase(out.begin(), first);
  return out;
}

std::string string_fact(const boost::json::object& facts, std::string_view key) {
  if (const auto* v = facts.if_contains(key); v && v->is_string())
    return std::string(v->as_string());
  return {};
}

boost::json::array json_strings(const std::vector<std::string>& v) {
  boost::json::array a;
  for (const auto& s : v)
    a.emplace_back(s);
  return a;
}

std::int64_t unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

struct TokenRow {
  std::string kind;
  lb::LabelSet labels;
  TokenBinding binding;
};

// The join of a network-booted machine, for its boot timeline (`lab machine timeline MAC`).
// Only boot tokens bound to a MAC name a machine the PXE servers know.
void record_boot_join(pxe::events::Sink* sink, const TokenRow& row, std::string_view address,
                      std::vector<std::pair<std::string, std::string>> detail) {
  if (sink == nullptr || row.kind != "boot" || row.binding.mac.empty())
    return;
  sink->record({std::chrono::system_clock::now(), pxe::events::Kind::agent_join, row.binding.mac,
                std::string(address), std::move(detail)});
}

// The certificate of a key proof, once its signature over `message` verifies with the
// certificate's own key. Pure: checked before the state mutex is taken.
Result<cr::Certificate> proof_certificate(const proto::KeyProof& proof, std::string_view message) {
  auto cert = cr::Certificate::from_pem(proof.certificate_pem);
  if (!cert)
    return Error(CoordinatorError::certificate_invalid, "proof: the certificate does not parse");
  auto sig = cr::base64url_decode(proof.signature);
  if (!sig || !cr::verify_ecdsa(cert->public_key_der(), cr::as_bytes(message), *sig)) {
    return Error(CoordinatorError::proof_invalid,
                 "proof: the signature does not verify with the certificate's key");
  }
  return std::move(*cert);
}

}  // namespace

Result<cr::Certificate> CoordinatorImpl::issue_client_cert(const std::string& node_id,
                                                           const cr::Bytes& spki) {
  cr::CertificateSpec spec;
  spec.common_name = node_id;
  const auto t = options_.clock();
  spec.not_before = t - kBackdate;
  spec.not_after = t + options_.certificate_ttl;
  spec.usage = cr::CertUsage::server_and_client;  // agents also serve their peers over mTLS
  auto cert = cr::issue_certificate(identity_.ca_key, identity_.ca_cert, spki, spec);
  if (!cert)
    return Error(CoordinatorError::certificate_invalid, cert.error().message());
  return std::move(*cert);
}

Result<const NodeRecord*> CoordinatorImpl::check_proof(const proto::KeyProof& proof,
                                                       std::string_view message) {
  LAB_TRY_ASSIGN(cr::Certificate cert, proof_certificate(proof, message));
  const auto now = options_.clock();
  const auto not_after = cert.not_after();
  // Ours, at a moment it was valid: it may have expired since.
  if (!cr::verify_certificate(cert, identity_.ca_cert, std::min(now, not_after - 1s))) {
    return Error(CoordinatorError::certificate_invalid,
                 "proof: the certificate is not from this coordinator's CA");
  }
  const std::string serial = cert.serial();
  if (now > not_after + options_.renew_grace) {
    const auto days = std::chrono::duration_cast<std::chrono::hours>(now - not_after).count() / 24;
    return Error(CoordinatorError::renew_grace_passed,
                 "certificate " + serial + " expired " + std::to_string(days) +
                     " days ago, longer than coordinator.renew_grace (" +
                     std::to_string(options_.renew_grace.count() / 86400) +
                     " days): join again with a new token ('labd rejoin')");
  }
  auto it = model_.certs.find(serial);
  if (it == model_.certs.end() || it->second.node_id != cert.common_name()) {
    return Error(CoordinatorError::certificate_invalid,
                 "proof: certificate " + serial + " was not issued to the node it names");
  }
  if (it->second.revoked)
    return Error(CoordinatorError::node_revoked, "proof: certificate " + serial + " is revoked");
  const NodeRecord* node = model_.find(it->second.node_id);
  if (node == nullptr)
    return Error(CoordinatorError::certificate_invalid, "proof: no node " + it->second.node_id);
  if (node->state == "revoked")
    return Error(CoordinatorError::node_revoked, "proof: node " + node->id + " is revoked");
  return node;
}

Result<std::function<void()>> CoordinatorImpl::revoke_serials(
    const std::string& id, const std::vector<std::string>& serials, std::int64_t t) {
  for (const auto& serial : serials) {
    LAB_TRY(store_->run("UPDATE certs SET revoked_at = ? WHERE serial = ? AND revoked_at IS NULL",
                        t, serial));
  }
  return std::function<void()>([this, id, serials] {
    for (const auto& serial : serials) {
      if (auto it = model_.certs.find(serial); it != model_.certs.end() && it->second.node_id == id)
        it->second.revoked = true;
    }
  });
}

Result<proto::JoinResponse> CoordinatorImpl::join(const proto::JoinRequest& request,
                                                  const Actor& actor) {
  constexpr std::string_view kRefused = "join.refused";
  auto token = proto::parse_token(request.token);
  if (!token) {
    return refuse(actor, kRefused, "",
                  Error(CoordinatorError::token_unknown, token.error().detail()));
  }
  const std::string token_id = token->id;
  auto csr = cr::verify_csr(request.csr_pem);
  if (!csr) {
    return refuse(actor, kRefused, token_id,
                  Error(CoordinatorError::certificate_invalid, "csr: " + csr.error().detail()));
  }
  auto sealing_raw = cr::base64url_decode(request.sealing_key);
  if (!sealing_raw || !cr::X25519PublicKey::from_raw(*sealing_raw)) {
    return refuse(actor, kRefused, token_id,
                  Error(CoordinatorError::invalid_argument,
                        "sealing_key: not a base64url X25519 public key"));
  }
  if (request.hostname.size() > kMaxHostname) {
    return refuse(actor, kRefused, token_id,
                  Error(CoordinatorError::invalid_argument, "hostname: too long"));
  }
  // A proof's signature is checked before the lock; which node it names, under it.
  std::optional<proto::KeyProof> proof = request.proof;
  if (proof) {
    auto cert =
        proof_certificate(*proof, proto::key_proof_message("join", token_id, request.csr_pem));
    if (!cert)
      return refuse(actor, kRefused, token_id, cert.error());
  }
  const std::vector<std::string> macs = macs_from_facts(request.facts);

  Lock lock(state_mutex_);
  const std::int64_t t = now();
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  // The token is read, checked and marked used inside this one IMMEDIATE transaction, under
  // the write lock: two joins with one token cannot both see it unused.
  LAB_TRY_ASSIGN(sq::Statement * st,
                 store_->query("SELECT kind, secret_sha256, labels, bind_mac, bind_ip, bind_host, "
                               "expires_at, revoked_at, used_at FROM tokens WHERE id = ?",
                               token_id));
  LAB_TRY_ASSIGN(bool found, Store::step(*st));
  TokenRow row;
  std::optional<Error> refusal;
  bool holds_secret = false;  // the caller presented the real token (used, expired, bound…)
  if (!found) {
    refusal = Error(CoordinatorError::token_unknown, "no token " + token_id);
  } else {
    const cr::Digest presented = cr::sha256(token->secret);
    const cr::Bytes stored = st->blob(1);
    row.kind = st->text(0);
    row.labels = labels_from_json(st->text(2));
    row.binding = {st->text(3), st->text(4), st->text(5)};
    holds_secret = cr::constant_time_equal(presented, stored);
    if (!holds_secret) {
      refusal = Error(CoordinatorError::token_unknown, "secret of token " + token_id + " differs");
    } else if (!st->is_null(7)) {
      refusal = Error(CoordinatorError::token_revoked, "token " + token_id + " was revoked");
    } else if (!st->is_null(8)) {
      refusal = Error(CoordinatorError::token_used, "token " + token_id + " was already used");
    } else if (t >= st->int64(6)) {
      refusal = Error(CoordinatorError::token_expired, "token " + token_id + " expired");
    } else if (!row.binding.mac.empty() &&
               std::find(macs.begin(), macs.end(), row.binding.mac) == macs.end()) {
      refusal = Error(CoordinatorError::token_binding,
                      "token " + token_id + " is bound to MAC " + row.binding.mac);
    } else if (!row.binding.ip.empty() && row.binding.ip != actor.address) {
      refusal = Error(CoordinatorError::token_binding, "token " + token_id + " is bound to IP " +
                                                           row.binding.ip + ", caller is " +
                                                           actor.address);
    } else if (!row.binding.host.empty() && row.binding.host != request.hostname) {
      refusal = Error(CoordinatorError::token_binding,
                      "token " + token_id + " is bound to host " + row.binding.host);
    }
  }
  st->reset();

  // Who is joining: the node a proof names, or the node an operator armed for a reinstall
  // when the boot token's MAC is one of its own; anyone else is a new node.
  const NodeRecord* existing = nullptr;
  std::string how;
  boost::json::object notes;
  if (!refusal && proof) {
    auto named = check_proof(*proof, proto::key_proof_message("join", token_id, request.csr_pem));
    if (named) {
      existing = *named;
      how = "key";
    } else if (named.error() == CoordinatorError::proof_invalid) {
      refusal = named.error();
    } else {
      // A stale or foreign proof (a revoked node rejoining with a fresh token) proves
      // nothing; the token alone makes a new node.
      notes["proof_ignored"] = named.error().detail();
    }
  }
  const std::string& token_mac = row.binding.mac;
  std::string mac_owner;
  if (!token_mac.empty()) {
    if (auto it = model_.id_by_mac.find(token_mac); it != model_.id_by_mac.end())
      mac_owner = it->second;
  }
  if (!refusal && existing == nullptr && row.kind == "boot" && !mac_owner.empty()) {
    const NodeRecord* owner = model_.find(mac_owner);
    if (owner != nullptr && owner->reinstall_armed && owner->state != "revoked") {
      existing = owner;
      how = "reinstall";
    }
  }
  if (refusal) {
    { const auto rolled_back = std::move(tx); }  // nothing was written
    lock.unlock();
    // Without the secret anyone who saw the token id could write to the machine's timeline.
    if (holds_secret) {
      record_boot_join(
          options_.boot_events, row, actor.address,
          {{"result", "refused"}, {"reason", refusal->code().message()}, {"token", token_id}});
    }
    return refuse(actor, kRefused, token_id, *refusal);
  }
  // The token's MAC (this appliance's DHCP leased it, or an operator bound the token to it)
  // becomes the node's, unless another node holds it: then it stays where it is.
  bool take_mac = !token_mac.empty() && mac_owner.empty();
  const bool mac_conflict = !token_mac.empty() && !mac_owner.empty() &&
                            (existing == nullptr || existing->id != mac_owner);
  if (mac_conflict) {
    notes["mac_refused"] = token_mac;
    notes["mac_owner"] = mac_owner;
  }

  NodeRecord node;
  const bool reenrol = existing != nullptr;
  std::vector<std::string> old_serials;
  if (reenrol) {
    node = *existing;
    node.reinstall_armed = false;
    for (const auto& [serial, c] : model_.certs) {
      if (c.node_id == node.id && !c.revoked)
        old_serials.push_back(serial);
    }
    node.superseded.clear();
  } else {
    LAB_TRY_ASSIGN(cr::Bytes id_bytes, [] {
      auto r = cr::random_bytes(8);
      return r ? Result<cr::Bytes>(std::move(*r))
               : Result<cr::Bytes>(Error(CoordinatorError::store_failed, r.error().message()));
    }());
    node.id = cr::hex_encode(id_bytes);
    std::string base = name_from_hostname(request.hostname);
    if (base.empty())
      base = "node-" + node.id.substr(0, 8);
    node.name = base;
    for (int i = 2; model_.id_by_name.contains(node.name); ++i)
      node.name = base.substr(0, lb::kMaxNameLength - 6) + "-" + std::to_string(i);
    node.created_at = t;
  }
  for (const auto& [k, v] : row.labels)
    node.labels[k] = v;
  if (!reenrol) {
    // A boot join whose MAC another node holds waits for an operator, whatever auto_accept
    // says: it is either that machine without its keys or something pretending to be it.
    const bool accepted =
        row.kind == "join" || (!mac_conflict && auto_accept_ && auto_accept_->matches(node.labels));
    node.state = accepted ? "enrolled" : "discovered";
  }
  node.facts = request.facts;
  node.last_seen = t;
  node.agent_version = request.agent_version;
  node.sealing_key = request.sealing_key;
  node.key_protection = string_fact(request.facts, "key_protection").substr(0, 32);
  if (const std::string peer = string_fact(request.facts, "peer_address");
      valid_peer_address(peer)) {
    node.peer_address = peer;
  }
  if (take_mac) {
    node.macs.push_back(token_mac);
    std::sort(node.macs.begin(), node.macs.end());
  }

  LAB_TRY_ASSIGN(cr::Certificate cert, issue_client_cert(node.id, csr->public_key_der));
  node.cert_serial = cert.serial();
  node.cert_expires_at = unix_seconds(cert.not_after());

  LAB_TRY(
      store_->run("UPDATE tokens SET used_at = ?, used_by = ? WHERE id = ?", t, node.id, token_id));
  LAB_TRY(store_->run(
      "INSERT INTO nodes (id, name, state, labels, facts, created_at, last_seen, agent_version, "
      "sealing_key, peer_address, cert_serial, cert_expires_at, reinstall_armed, key_protection) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT (id) DO UPDATE SET "
      "state = excluded.state, labels = excluded.labels, facts = excluded.facts, "
      "last_seen = excluded.last_seen, agent_version = excluded.agent_version, "
      "sealing_key = excluded.sealing_key, peer_address = excluded.peer_address, "
      "cert_serial = excluded.cert_serial, cert_expires_at = excluded.cert_expires_at, "
      "reinstall_armed = 0, key_protection = excluded.key_protection",
      node.id, node.name, node.state, labels_to_json(node.labels),
      boost::json::serialize(node.facts), node.created_at, node.last_seen, node.agent_version,
      node.sealing_key, node.peer_address, node.cert_serial, node.cert_expires_at,
      node.key_protection));
  if (take_mac) {
    LAB_TRY(store_->run("INSERT INTO node_macs (mac, node_id, source) VALUES (?, ?, ?)", token_mac,
                        node.id, row.kind == "boot" ? "dhcp" : "operator"));
  }
  // Re-enrolled with new keys: whatever held the old ones no longer speaks for the node.
  LAB_TRY_ASSIGN(auto revoke_old, revoke_serials(node.id, old_serials, t));
  LAB_TRY(
      store_->run("INSERT INTO certs (serial, node_id, issued_at, expires_at) VALUES (?, ?, ?, ?)",
                  node.cert_serial, node.id, t, node.cert_expires_at));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  boost::json::object detail{{"token", token_id},          {"kind", row.kind},
                             {"name", node.name},          {"state", node.state},
                             {"serial", node.cert_serial}, {"reenrolled", reenrol}};
  if (reenrol)
    detail["proof"] = how;  // "key" or "reinstall"
  for (const auto& [k, v] : notes)
    detail[k] = v;
  LAB_TRY(append_audit(*store_, {t, actor, "join", node.id, detail}));
  if (mac_conflict) {
    LAB_TRY(append_audit(
        *store_,
        {t, actor, "mac.claim_refused", mac_owner, {{"mac", token_mac}, {"claimed_by", node.id}}}));
  }

  // Views: a re-enrolment revokes serials every bundle lists, a new peer address changes the
  // ring; otherwise only this node is touched.
  Dirty dirty = Dirty::node(node.id);
  if (reenrol)
    dirty = Dirty::everything();
  else if (!node.peer_address.empty())
    dirty = ring_change(std::move(dirty), t);
  const proto::JoinResponse response{node.id,  node.name,           cert.pem(),
                                     ca_pem(), bundle_public_key(), node.state};
  const std::string id = node.id;
  auto apply = [&] {
    if (take_mac)
      model_.id_by_mac[token_mac] = id;
    revoke_old();
    model_.certs[node.cert_serial] = CertRecord{id, node.cert_expires_at, false};
    model_.id_by_name[node.name] = id;
    model_.nodes[id] = std::move(node);
    refresh_machine(model_.nodes[id]);
  };
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, dirty, apply));
  if (reenrol) {
    // Long-polls parked with the old certificate are answered 403, never with a bundle
    // sealed to the new keys.
    auto calls = hub_->evict(id);
    d.calls.insert(d.calls.begin(), std::make_move_iterator(calls.begin()),
                   std::make_move_iterator(calls.end()));
  }
  lock.unlock();
  deliver(std::move(d));
  record_boot_join(options_.boot_events, row, actor.address,
                   {{"result", "joined"},
                    {"node", response.node_id},
                    {"name", response.name},
                    {"state", response.state},
                    {"reenrolled", reenrol ? how : "no"}});
  return response;
}

Result<proto::RenewResponse> CoordinatorImpl::renew(const AgentIdentity& agent,
                                                    const proto::RenewRequest& r) {
  auto csr = cr::verify_csr(r.csr_pem);
  if (!csr)
    return Error(CoordinatorError::certificate_invalid, "csr: " + csr.error().detail());
  Lock lock(state_mutex_);
  auto node_it = model_.nodes.find(agent.node_id);
  if (node_it == model_.nodes.end())
    return Error(CoordinatorError::not_found, "no node " + agent.node_id);
  auto cert_it = model_.certs.find(agent.cert_serial);
  if (node_it->second.state == "revoked" ||
      (cert_it != model_.certs.end() && cert_it->second.revoked)) {
    return Error(CoordinatorError::node_revoked, "node " + agent.node_id + " is revoked");
  }
  LAB_TRY_ASSIGN(cr::Certificate cert, issue_client_cert(agent.node_id, csr->public_key_der));
  const std::string serial = cert.serial();
  const std::int64_t expires = unix_seconds(cert.not_after());
  const std::int64_t t = now();
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  LAB_TRY(
      store_->run("INSERT INTO certs (serial, node_id, issued_at, expires_at) VALUES (?, ?, ?, ?)",
                  serial, agent.node_id, t, expires));
  LAB_TRY(store_->run(
      "UPDATE nodes SET cert_serial = ?, cert_expires_at = ?, last_seen = ? WHERE id = ?", serial,
      expires, t, agent.node_id));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  LAB_TRY(append_audit(*store_, {t,
                                 Actor{"node:" + agent.node_id, {}},
                                 "node.renew",
                                 agent.node_id,
                                 {{"serial", serial}, {"previous", agent.cert_serial}}}));
  auto apply = [&] {
    model_.certs[serial] = CertRecord{agent.node_id, expires, false};
    auto& n = model_.nodes[agent.node_id];
    // The old certificate stays good until the agent has switched (identify_verified_agent
    // revokes it then), so a renewal whose answer is lost strands nobody.
    if (!n.cert_serial.empty())
      n.superseded.push_back(n.cert_serial);
    n.cert_serial = serial;
    n.cert_expires_at = expires;
    n.last_seen = t;
  };
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, Dirty{}, apply));
  lock.unlock();
  deliver(std::move(d));
  return proto::RenewResponse{cert.pem()};
}

Result<proto::RenewResponse> CoordinatorImpl::renew_with_proof(const proto::RenewRequest& r,
                                                               const Actor& actor) {
  constexpr std::string_view kRefused = "renew.refused";
  if (!r.proof) {
    return refuse(actor, kRefused, "",
                  Error(CoordinatorError::invalid_argument,
                        "a renewal without a client "
                        "certificate needs a key proof"));
  }
  auto csr = cr::verify_csr(r.csr_pem);
  if (!csr) {
    return refuse(actor, kRefused, "",
                  Error(CoordinatorError::certificate_invalid, "csr: " + csr.error().detail()));
  }
  const std::string message = proto::key_proof_message("renew", "", r.csr_pem);
  if (auto cert = proof_certificate(*r.proof, message); !cert)
    return refuse(actor, kRefused, "", cert.error());
  AgentIdentity agent;
  {
    const Lock lock(state_mutex_);
    auto node = check_proof(*r.proof, message);
    if (!node)
      return refuse(actor, kRefused, "", node.error());
    agent.node_id = (*node)->id;
    agent.cert_serial = cr::Certificate::from_pem(r.proof->certificate_pem).value().serial();
  }
  return renew(agent, r);
}

Result<AgentIdentity> CoordinatorImpl::identify_agent(std::string_view client_cert_der) {
  auto cert = cr::Certificate::from_der(cr::as_bytes(client_cert_der));
  if (!cert)
    return Error(CoordinatorError::certificate_invalid, cert.error().detail());
  if (auto ok = cr::verify_certificate(*cert, identity_.ca_cert, options_.clock()); !ok)
    return Error(CoordinatorError::certificate_invalid, ok.error().detail());
  return identify_verified_agent({cert->serial(), cert->common_name(), cert->not_after()});
}

Result<AgentIdentity> CoordinatorImpl::identify_verified_agent(const VerifiedClientCert& cert) {
  // The handshake checked the validity period once; a connection may outlive the certificate.
  if (options_.clock() > cert.not_after)
    return Error(CoordinatorError::certificate_invalid, "certificate " + cert.serial + " expired");
  const std::string& serial = cert.serial;
  Lock lock(state_mutex_);
  auto it = model_.certs.find(serial);
  if (it == model_.certs.end())
    return Error(CoordinatorError::certificate_invalid, "serial " + serial + " was never issued");
  if (it->second.node_id != cert.common_name) {
    return Error(CoordinatorError::certificate_invalid, "serial " + serial + " names another node");
  }
  if (it->second.revoked)
    return Error(CoordinatorError::node_revoked, "certificate " + serial + " is revoked");
  auto node_it = model_.nodes.find(it->second.node_id);
  if (node_it == model_.nodes.end())
    return Error(CoordinatorError::certificate_invalid, "no node " + it->second.node_id);
  NodeRecord& node = node_it->second;
  if (node.state == "revoked")
    return Error(CoordinatorError::node_revoked, "node " + node.id + " is revoked");
  AgentIdentity id{node.id, serial};
  if (serial != node.cert_serial || node.superseded.empty())
    return id;

  // The agent has switched to its renewed certificate: the ones before it are revoked now.
  // Done once per renewal; a failure leaves them for the next request.
  const std::vector<std::string> old = node.superseded;
  const std::int64_t t = now();
  auto tx = store_->begin();
  if (!tx)
    return id;
  auto revoke_old = revoke_serials(node.id, old, t);
  auto rev = revoke_old ? store_->bump_revision() : Result<std::int64_t>(revoke_old.error());
  if (!rev || !append_audit(*store_, {t,
                                      Actor{"node:" + node.id, {}},
                                      "cert.superseded",
                                      node.id,
                                      {{"serial", serial}, {"revoked", json_strings(old)}}})) {
    return id;
  }
  auto d = commit(*tx, *rev, Dirty::everything(), [&] {
    (*revoke_old)();
    node.superseded.clear();
  });
  lock.unlock();
  if (d)
    deliver(std::move(*d));
  return id;
}

}  // namespace lab::bootstrap::coordinator
