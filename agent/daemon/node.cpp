#include "agent/daemon/node.hpp"

#include "agent/facts/facts.hpp"
#include "agent/files/atomic_file.hpp"
#include "agent/keystore/tpm.hpp"
#include "agent/sync/join.hpp"
#include "agent/sync/proof.hpp"
#include "shared/crypto/x509.hpp"
#include "shared/json/json.hpp"
#include "shared/protocol/protocol.hpp"
#include "shared/version/version.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <system_error>

namespace lab::agent::daemon {
namespace {

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string host_name() {
  std::array<char, 256> buf{};
  if (::gethostname(buf.data(), buf.size() - 1) != 0)
    return {};
  return buf.data();
}

Result<void> ensure_data_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return Error(DaemonError::data_dir, fmt::format("creating {}: {}", dir.string(), ec.message()));
  // Only root reads the node's state; the local API is how everyone else asks.
  if (::chmod(dir.c_str(), 0700) != 0)
    return Error(DaemonError::data_dir, fmt::format("chmod 0700 {}", dir.string()));
  return {};
}

Result<void> write_node_record(const Settings& s, const NodeRecord& r) {
  boost::json::object o;
  o["node_id"] = r.node_id;
  o["name"] = r.name;
  o["coordinator_url"] = r.coordinator_url;
  o["key_protection"] = r.key_protection;
  o["joined_at"] = r.joined_at;
  auto w = files::write_atomic(s.node_file(), boost::json::serialize(o) + "\n", 0644);
  if (!w)
    return Error(DaemonError::node_file, w.error().message());
  return {};
}

// The data key failed in a way a fresh key fixes (the TPM works, but the old blob is not
// ours to open any more); a missing or broken TPM is not one of them.
bool fresh_key_helps(const Error& e) {
  using keystore::KeystoreError;
  return e == KeystoreError::other_tpm || e == KeystoreError::pcr_policy_failed ||
         e == KeystoreError::bad_blob || e == KeystoreError::load_failed ||
         e == KeystoreError::unseal_failed || e == KeystoreError::mode_mismatch ||
         e == KeystoreError::key_file || e == keystore::KeystoreError::unwrap_failed ||
         e == cache::CacheError::bad_identity;
}

Result<void> remove_state(const Settings& s) {
  for (const char* name : {"cache.db", "cache.db-wal", "cache.db-shm", keystore::kSealedKeyFile,
                           keystore::kPlainKeyFile, "node.json"}) {
    if (auto r = files::remove_durable(s.data_dir / name); !r)
      return Error(DaemonError::reset_failed, r.error().message());
  }
  return {};
}

bool pins_ca(std::string_view ca_pem, std::string_view pin) {
  auto ca = shared::crypto::Certificate::from_pem(ca_pem);
  return ca && shared::crypto::spki_pin(ca->public_key_der()) == pin;
}

template <class T>
T or_default(Result<T> r, T fallback = {}) {
  return r ? std::move(*r) : std::move(fallback);
}

}  // namespace

const boost::system::error_category& daemon_category() noexcept {
  static const ErrorCategory<DaemonError> kCategory(
      "lab.labd", [](DaemonError e) noexcept -> const char* {
        switch (e) {
          case DaemonError::bad_join_string:
            return "not a join string";
          case DaemonError::already_joined:
            return "already joined";
          case DaemonError::not_joined:
            return "not joined";
          case DaemonError::node_file:
            return "node file unusable";
          case DaemonError::reset_failed:
            return "old node state could not be removed";
          case DaemonError::not_running:
            return "labd is not running";
          case DaemonError::local_api:
            return "local API refused";
          case DaemonError::data_dir:
            return "data directory unusable";
        }
        return "labd error";
      });
  return kCategory;
}

Result<std::optional<NodeRecord>> read_node_record(const Settings& s) {
  std::error_code ec;
  if (!std::filesystem::exists(s.node_file(), ec))
    return std::optional<NodeRecord>{};
  auto text = files::read_file(s.node_file(), std::size_t{64} * 1024);
  if (!text)
    return Error(DaemonError::node_file, text.error().message());
  auto o = shared::json::parse_object(*text);
  if (!o)
    return Error(DaemonError::node_file, s.node_file().string() + ": " + o.error().message());
  NodeRecord r;
  auto id = shared::json::get_string(*o, "node_id");
  if (!id || id->empty())
    return Error(DaemonError::node_file, s.node_file().string() + ": no node_id");
  r.node_id = *id;
  r.name = or_default(shared::json::get_string(*o, "name"));
  r.coordinator_url = or_default(shared::json::get_string(*o, "coordinator_url"));
  r.key_protection = or_default(shared::json::get_string(*o, "key_protection"));
  r.joined_at = or_default(shared::json::get_int(*o, "joined_at"));
  return std::optional<NodeRecord>(std::move(r));
}

Result<OpenNode> open_node(const Settings& s) {
  LAB_TRY_ASSIGN(auto record, read_node_record(s));
  if (!record)
    return Error(DaemonError::not_joined, "this node has not joined");
  LAB_TRY_ASSIGN(keystore::DataKey key, keystore::DataKey::open(s.keystore_options()));
  OpenNode n;
  n.key = std::make_shared<const keystore::DataKey>(std::move(key));
  LAB_TRY_ASSIGN(n.cache, cache::Cache::open(s.cache_file(), n.key));
  LAB_TRY_ASSIGN(n.identity, n.cache->identity());
  return n;
}

Result<Joined> join(const Settings& s, const JoinOptions& o) {
  auto js = shared::protocol::parse_join_string(o.join_string);
  if (!js)
    return Error(DaemonError::bad_join_string, js.error().message());
  LAB_TRY_ASSIGN(auto record, read_node_record(s));
  if (record && !o.rejoin) {
    return Error(DaemonError::already_joined,
                 fmt::format("this node already joined as {} ({}) at {}", record->name,
                             record->node_id, record->coordinator_url));
  }
  LAB_TRY(ensure_data_dir(s.data_dir));

  // The keystore comes first: a node that cannot keep its keys must not spend the token.
  bool fresh = false;
  std::shared_ptr<const keystore::DataKey> key;
  if (auto opened = keystore::DataKey::open(s.keystore_options()); opened) {
    key = std::make_shared<const keystore::DataKey>(std::move(*opened));
  } else if (o.rejoin && fresh_key_helps(opened.error())) {
    fresh = true;
    if (s.key_protection == keystore::Protection::tpm && !keystore::tpm_available(s.tcti)) {
      return Error(keystore::KeystoreError::no_tpm, fmt::format("no TPM answers at '{}'", s.tcti));
    }
  } else {
    return opened.error();
  }
  std::unique_ptr<cache::Cache> cache;
  std::optional<cache::Identity> previous;
  if (!fresh) {
    LAB_TRY_ASSIGN(cache, cache::Cache::open(s.cache_file(), key));
    LAB_TRY_ASSIGN(bool joined, cache->joined());
    if (joined && !o.rejoin) {
      return Error(DaemonError::already_joined,
                   "this node already joined (its cache holds an identity)");
    }
    if (joined) {
      // An identity that no longer decrypts is as lost as a key that no longer unseals.
      auto id = cache->identity();
      if (!id && fresh_key_helps(id.error())) {
        cache.reset();
        key.reset();
        fresh = true;
      } else if (id) {
        previous = std::move(*id);
      }
    }
  }

  sync::JoinParams p;
  p.join = *js;
  Joined out;
  if (record) {
    out.previous_node_id = record->node_id;
    out.previous_name = record->name;
    out.proof = Joined::Proof::identity_unusable;
  }
  if (previous && !pins_ca(previous->ca_pem, js->ca_pin)) {
    // The proof goes only to the coordinator that issued the certificate: another one could
    // not use it and has no business seeing it.
    out.proof = Joined::Proof::other_coordinator;
  } else if (previous) {
    if (auto signer = sync::proof_signer(previous->certificate_pem, previous->tls_key_pem)) {
      p.prove = std::move(*signer);
      out.proof = Joined::Proof::sent;
    }
  }
  p.hostname = o.hostname.empty() ? host_name() : o.hostname;
  p.agent_version = shared::kVersion;
  // A fresh key is made after the join with these settings; until then it is described by them.
  p.facts = node_facts(
      o.facts_root, key ? key->protection_fact() : keystore::protection_fact(s.keystore_options()));
  p.timeout = o.timeout;
  LAB_TRY_ASSIGN(cache::Identity identity, sync::join(p));

  if (fresh) {
    LAB_TRY(remove_state(s));
    LAB_TRY_ASSIGN(keystore::DataKey k, keystore::DataKey::open(s.keystore_options()));
    key = std::make_shared<const keystore::DataKey>(std::move(k));
    LAB_TRY_ASSIGN(cache, cache::Cache::open(s.cache_file(), key));
  }
  LAB_TRY(cache->store_identity(identity, o.rejoin));
  NodeRecord r;
  r.node_id = identity.node_id;
  r.name = identity.name;
  r.coordinator_url = identity.coordinator_url;
  r.key_protection = keystore::protection_name(s.key_protection);
  r.joined_at = unix_now();
  LAB_TRY(write_node_record(s, r));
  out.record = std::move(r);
  return out;
}

boost::json::object node_facts(const std::filesystem::path& root, std::string_view key_protection) {
  boost::json::object o = facts::to_json(facts::collect(root));
  o["key_protection"] = key_protection;
  return o;
}

std::string hint(const Error& e) {
  const auto& cat = e.code().category();
  if (cat == sync::sync_category())
    return sync::hint(static_cast<sync::SyncError>(e.code().value()));
  if (e == DaemonError::already_joined)
    return "'labd rejoin <join-string>' enrols it again with new keys, as the same node while "
           "its key still works";
  if (e == DaemonError::not_joined)
    return "join first: 'labd join <join-string>' (from 'lab token create')";
  if (e == DaemonError::bad_join_string)
    return "a join string starts with 'lab1:'; copy it whole from 'lab token create'";
  if (e == DaemonError::not_running)
    return "start the agent ('systemctl start labd' or 'labd run'), or run this as root";
  if (e == keystore::KeystoreError::no_tpm || e == keystore::KeystoreError::tpm_startup)
    return "check 'tcti' in /etc/lab/labd.toml, or set key_protection = \"file\" to run without "
           "a TPM (status then reports \"degraded\")";
  if (e == keystore::KeystoreError::other_tpm || e == keystore::KeystoreError::pcr_policy_failed ||
      e == keystore::KeystoreError::mode_mismatch || e == cache::CacheError::bad_identity)
    return "the node's state cannot be opened on this machine as it is now; "
           "'labd rejoin <join-string>' enrols it again, as a new node since its key is lost "
           "(the cache is left untouched until then)";
  return {};
}

}  // namespace lab::agent::daemon
