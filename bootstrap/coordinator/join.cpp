// Join (token → node + client certificate), renewal and agent authentication.
#include "bootstrap/coordinator/audit.hpp"
#include "bootstrap/coordinator/coordinator_impl.hpp"
#include "pxe/events/event.hpp"
#include "shared/crypto/encoding.hpp"
#include "shared/crypto/hash.hpp"
#include "shared/crypto/random.hpp"

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

std::string peer_address_from(const boost::json::object& facts) {
  if (const auto* v = facts.if_contains("peer_address"); v && v->is_string())
    return std::string(v->as_string()).substr(0, 300);
  return {};
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

}  // namespace

Error CoordinatorImpl::refuse_join(const Actor& actor, std::string_view token_id,
                                   const Error& refusal) {
  // A refusal changes no state, so it does not move the revision; it is still one committed
  // audit row, written even when the join's own transaction was rolled back.
  auto tx = store_->begin();
  if (!tx)
    return refusal;
  boost::json::object detail{{"reason", refusal.code().message()}, {"detail", refusal.detail()}};
  if (append_audit(*store_, {now(), actor, "join.refused", std::string(token_id), detail})) {
    (void)tx->commit();
  }
  return refusal;
}

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

Result<proto::JoinResponse> CoordinatorImpl::join(const proto::JoinRequest& request,
                                                  const Actor& actor) {
  auto token = proto::parse_token(request.token);
  const std::string token_id = token ? token->id : std::string();
  Lock lock(state_mutex_);
  if (!token) {
    return refuse_join(actor, "", Error(CoordinatorError::token_unknown, token.error().detail()));
  }
  auto csr = cr::verify_csr(request.csr_pem);
  if (!csr) {
    return refuse_join(
        actor, token_id,
        Error(CoordinatorError::certificate_invalid, "csr: " + csr.error().detail()));
  }
  auto sealing_raw = cr::base64url_decode(request.sealing_key);
  if (!sealing_raw || !cr::X25519PublicKey::from_raw(*sealing_raw)) {
    return refuse_join(actor, token_id,
                       Error(CoordinatorError::invalid_argument,
                             "sealing_key: not a base64url X25519 public key"));
  }
  if (request.hostname.size() > kMaxHostname) {
    return refuse_join(actor, token_id,
                       Error(CoordinatorError::invalid_argument, "hostname: too long"));
  }
  const std::vector<std::string> macs = macs_from_facts(request.facts);
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

  // A machine that PXE-boots again keeps its node: its MAC names it.
  const NodeRecord* existing = nullptr;
  if (!refusal && row.kind == "boot") {
    for (const auto& mac : macs) {
      if (auto it = model_.id_by_mac.find(mac); it != model_.id_by_mac.end()) {
        existing = model_.find(it->second);
        break;
      }
    }
    if (existing != nullptr && existing->state == "revoked") {
      refusal =
          Error(CoordinatorError::node_revoked, "MAC belongs to revoked node " + existing->id);
    }
  }
  if (refusal) {
    boost::json::object detail{{"reason", refusal->code().message()},
                               {"detail", refusal->detail()}};
    LAB_TRY(append_audit(*store_, {t, actor, "join.refused", token_id, detail}));
    if (auto r = tx.commit(); !r)
      return store_error(r.error());
    // Without the secret anyone who saw the token id could write to the machine's timeline.
    if (holds_secret) {
      record_boot_join(
          options_.boot_events, row, actor.address,
          {{"result", "refused"}, {"reason", refusal->code().message()}, {"token", token_id}});
    }
    return *refusal;
  }

  NodeRecord node;
  const bool reenrol = existing != nullptr;
  if (reenrol) {
    node = *existing;
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
    const bool accepted =
        row.kind == "join" || (auto_accept_ && auto_accept_->matches(node.labels));
    node.state = accepted ? "enrolled" : "discovered";
  }
  node.facts = request.facts;
  node.last_seen = t;
  node.agent_version = request.agent_version;
  node.sealing_key = request.sealing_key;
  node.peer_address = peer_address_from(request.facts);
  std::vector<std::string> all_macs = node.macs;
  all_macs.insert(all_macs.end(), macs.begin(), macs.end());
  std::sort(all_macs.begin(), all_macs.end());
  all_macs.erase(std::unique(all_macs.begin(), all_macs.end()), all_macs.end());
  node.macs = std::move(all_macs);

  LAB_TRY_ASSIGN(cr::Certificate cert, issue_client_cert(node.id, csr->public_key_der));
  node.cert_serial = cert.serial();
  node.cert_expires_at =
      std::chrono::duration_cast<std::chrono::seconds>(cert.not_after().time_since_epoch()).count();

  LAB_TRY(
      store_->run("UPDATE tokens SET used_at = ?, used_by = ? WHERE id = ?", t, node.id, token_id));
  LAB_TRY(store_->run(
      "INSERT INTO nodes (id, name, state, labels, facts, created_at, last_seen, agent_version, "
      "sealing_key, peer_address, cert_serial, cert_expires_at) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
      "state = excluded.state, labels = excluded.labels, facts = excluded.facts, "
      "last_seen = excluded.last_seen, agent_version = excluded.agent_version, "
      "sealing_key = excluded.sealing_key, peer_address = excluded.peer_address, "
      "cert_serial = excluded.cert_serial, cert_expires_at = excluded.cert_expires_at",
      node.id, node.name, node.state, labels_to_json(node.labels),
      boost::json::serialize(node.facts), node.created_at, node.last_seen, node.agent_version,
      node.sealing_key, node.peer_address, node.cert_serial, node.cert_expires_at));
  for (const auto& mac : node.macs) {
    LAB_TRY(
        store_->run("INSERT INTO node_macs (mac, node_id) VALUES (?, ?) "
                    "ON CONFLICT (mac) DO UPDATE SET node_id = excluded.node_id",
                    mac, node.id));
  }
  if (reenrol) {
    // The machine was reinstalled: whatever held its old keys is no longer this node.
    LAB_TRY(store_->run("UPDATE certs SET revoked_at = ? WHERE node_id = ? AND revoked_at IS NULL",
                        t, node.id));
  }
  LAB_TRY(
      store_->run("INSERT INTO certs (serial, node_id, issued_at, expires_at) VALUES (?, ?, ?, ?)",
                  node.cert_serial, node.id, t, node.cert_expires_at));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  boost::json::object detail{{"token", token_id},          {"kind", row.kind},
                             {"name", node.name},          {"state", node.state},
                             {"serial", node.cert_serial}, {"reenrolled", reenrol}};
  LAB_TRY(append_audit(*store_, {t, actor, "join", node.id, detail}));

  // Views: a re-enrolment revokes serials every bundle lists; a new peer address changes
  // the ring; otherwise only the MAC's previous owner and this node are touched.
  Dirty dirty = Dirty::node(node.id);
  if (reenrol || !node.peer_address.empty())
    dirty = Dirty::everything();
  const proto::JoinResponse response{node.id,  node.name,           cert.pem(),
                                     ca_pem(), bundle_public_key(), node.state};
  auto apply = [&] {
    for (const auto& mac : node.macs) {
      auto& owner = model_.id_by_mac[mac];
      if (!owner.empty() && owner != node.id) {
        if (auto it = model_.nodes.find(owner); it != model_.nodes.end()) {
          std::erase(it->second.macs, mac);
          refresh_machine(it->second);
        }
      }
      owner = node.id;
    }
    if (reenrol) {
      for (auto& [serial, c] : model_.certs) {
        if (c.node_id == node.id)
          c.revoked = true;
      }
    }
    model_.certs[node.cert_serial] = CertRecord{node.id, node.cert_expires_at, false};
    model_.id_by_name[node.name] = node.id;
    const std::string id = node.id;
    model_.nodes[id] = std::move(node);
    refresh_machine(model_.nodes[id]);
  };
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, dirty, apply));
  lock.unlock();
  deliver(std::move(d));
  record_boot_join(options_.boot_events, row, actor.address,
                   {{"result", "joined"},
                    {"node", response.node_id},
                    {"name", response.name},
                    {"state", response.state},
                    {"reenrolled", reenrol ? "yes" : "no"}});
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
  const std::int64_t expires =
      std::chrono::duration_cast<std::chrono::seconds>(cert.not_after().time_since_epoch()).count();
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
    n.cert_serial = serial;
    n.cert_expires_at = expires;
    n.last_seen = t;
  };
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, Dirty{}, apply));
  lock.unlock();
  deliver(std::move(d));
  return proto::RenewResponse{cert.pem()};
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
  const Lock lock(state_mutex_);
  auto it = model_.certs.find(serial);
  if (it == model_.certs.end())
    return Error(CoordinatorError::certificate_invalid, "serial " + serial + " was never issued");
  if (it->second.node_id != cert.common_name) {
    return Error(CoordinatorError::certificate_invalid, "serial " + serial + " names another node");
  }
  if (it->second.revoked)
    return Error(CoordinatorError::node_revoked, "certificate " + serial + " is revoked");
  const NodeRecord* node = model_.find(it->second.node_id);
  if (node == nullptr)
    return Error(CoordinatorError::certificate_invalid, "no node " + it->second.node_id);
  if (node->state == "revoked")
    return Error(CoordinatorError::node_revoked, "node " + node->id + " is revoked");
  return AgentIdentity{node->id, serial};
}

}  // namespace lab::bootstrap::coordinator
