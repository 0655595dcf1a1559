#pragma once
// The node's state on disk and the commands that change it: join, rejoin, and opening the
// keystore and cache for the daemon or for a read while the daemon is not running.

#include "agent/cache/cache.hpp"
#include "agent/daemon/settings.hpp"
#include "agent/keystore/keystore.hpp"
#include "shared/errors/error.hpp"

#include <boost/json/object.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace lab::agent::daemon {

enum class DaemonError {
  bad_join_string = 1,  // the argument is not a join string
  already_joined,       // `labd join` on a node that has an identity
  not_joined,           // a command that needs an identity on a node without one
  node_file,            // node.json cannot be read or written
  reset_failed,         // rejoin could not remove the state the data key no longer opens
  not_running,          // the local API does not answer and the cache cannot be opened here
  local_api,            // the local API answered with an error
  data_dir,             // the data directory cannot be created or made private
};
const boost::system::error_category& daemon_category() noexcept;
inline boost::system::error_code make_error_code(DaemonError e) noexcept {
  return {static_cast<int>(e), daemon_category()};
}

/// node.json: who this node is, in clear (nothing secret).
struct NodeRecord {
  std::string node_id;
  std::string name;
  std::string coordinator_url;
  std::string key_protection;  // "tpm" / "file"
  std::int64_t joined_at = 0;  // unix seconds
};
/// nullopt when the node has not joined; node_file when the file is damaged.
Result<std::optional<NodeRecord>> read_node_record(const Settings& settings);

struct JoinOptions {
  std::string join_string;
  /// Enrol again, with new keys. While the node's identity still opens, the join carries a
  /// proof made with its current key, so the coordinator keeps the node (id, name, labels)
  /// unless it was revoked or its certificate expired past the renewal grace. When the data key
  /// no longer opens (another TPM, a changed PCR, a changed key_protection) there is nothing
  /// to prove with: the node becomes a new one, and the old key and cache are discarded, but
  /// only after the coordinator accepted the token, so a failed rejoin changes nothing.
  bool rejoin = false;
  std::chrono::milliseconds timeout{30000};
  std::filesystem::path facts_root = "/";
  std::string hostname;  // empty: gethostname()
};

/// What a join did.
struct Joined {
  NodeRecord record;
  /// The node this machine was before a rejoin (node.json); empty on a first join.
  std::string previous_node_id;
  std::string previous_name;
  /// Whether a key proof went with the join, or why not.
  enum class Proof {
    none,               // a first join
    sent,               // made with the old identity's key and certificate
    identity_unusable,  // the old identity does not open (data key, cache) or its key is bad
    other_coordinator,  // the join string pins another CA than the one of the old identity
  };
  Proof proof = Proof::none;

  /// A rejoin the coordinator answered with the same node: new keys, same identity.
  [[nodiscard]] bool kept_node() const {
    return !previous_node_id.empty() && previous_node_id == record.node_id;
  }
};

/// Blocking. Checks the keystore first (no TPM and key_protection="tpm" refuses before the
/// token is spent), then joins (agent/sync join: pin, keys, CSR, facts, and the key proof of a
/// rejoin) and stores the identity.
Result<Joined> join(const Settings& settings, const JoinOptions& options);

/// The node's open keystore and cache.
struct OpenNode {
  std::shared_ptr<const keystore::DataKey> key;
  std::unique_ptr<cache::Cache> cache;
  cache::Identity identity;
};
/// not_joined without node.json; the keystore's own error (other_tpm, pcr_policy_failed naming
/// the PCRs, no_tpm) when the data key does not open. Never changes what is on disk.
Result<OpenNode> open_node(const Settings& settings);

/// What labd reports about its node at join and in reports: the hardware facts under `root`
/// and facts["key_protection"] ("tpm", "tpm+pcr" or "file", keystore protection_fact()), which
/// the coordinator stores and which decides secrets that require a TPM.
boost::json::object node_facts(const std::filesystem::path& root, std::string_view key_protection);

/// A line of advice for the person at the terminal, for errors of join, run and the reads.
std::string hint(const Error& error);

}  // namespace lab::agent::daemon

template <>
struct boost::system::is_error_code_enum<lab::agent::daemon::DaemonError> : std::true_type {};
