#pragma once
// The node's local state in SQLite (WAL, synchronous=FULL): its identity, the last verified
// bundle envelope (verbatim, so it can be relayed), labels, sealed secrets, revision and the
// last time the coordinator confirmed it current. Private keys and secret rows are wrapped with
// the data key (AES-256-GCM, AAD naming the row), so a copy of the file is useless without this
// machine's TPM.

#include "agent/keystore/keystore.hpp"
#include "shared/crypto/bytes.hpp"
#include "shared/crypto/keys.hpp"
#include "shared/errors/error.hpp"
#include "shared/labels/label.hpp"
#include "shared/protocol/protocol.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace lab::agent::cache {

enum class CacheError {
  storage = 1,      // SQLite failed (detail has the statement)
  not_joined,       // no identity: `labd join` first
  already_joined,   // an identity exists: `labd rejoin` stores the new one in its place
  bad_identity,     // the stored identity does not decode (wrong data key or damage)
  bad_signature,    // the envelope is not a bundle signed by the coordinator's key
  bad_bundle,       // the signed payload is not a valid bundle
  wrong_node,       // the bundle names another node
  not_newer,        // the bundle's revision is not newer than the cached one
  no_secret,        // no secret of that name in the cache
  secret_unopened,  // the sealed box does not open with this node's key
  bad_row,          // a cached row does not decrypt or decode
};
const boost::system::error_category& cache_category() noexcept;
inline boost::system::error_code make_error_code(CacheError e) noexcept {
  return {static_cast<int>(e), cache_category()};
}

/// Who this node is, as `labd join` stored it.
struct Identity {
  std::string node_id;
  std::string name;
  std::string coordinator_url;
  std::string certificate_pem;              // the node's client certificate
  std::string ca_pem;                       // the coordinator CA (server and client certificates)
  std::string bundle_key;                   // base64url Ed25519 public key that signs bundles
  std::string state;                        // as the join answered: "enrolled" / "discovered"
  std::string tls_key_pem;                  // P-256 private key (PKCS#8 PEM); wrapped at rest
  shared::crypto::SecretBytes sealing_key;  // X25519 private key (32 bytes); wrapped at rest
};

/// One cached secret: still sealed to the node's X25519 key.
struct CachedSecret {
  std::int64_t version = 0;
  shared::crypto::Bytes sealed;
};

/// Where the cached view came from: a peer that relayed the coordinator's envelope, or (an
/// empty peer_node) the coordinator itself.
struct Origin {
  std::string peer_node;
  std::string peer_address;
  std::int64_t applied_at = 0;  // unix seconds
};

/// A kept envelope as stored: whose, which revision, and whether it replaced an older one.
struct KeptEnvelope {
  std::string node_id;
  std::int64_t revision = 0;
  bool stored = false;
};
struct KeptSummary {
  std::int64_t revision = 0;  // the newest among them; 0 when none
  std::vector<std::string> node_ids;
};

/// Everything local reads need, loaded at once (the local API serves from it in memory).
struct View {
  std::string node_id;
  std::string name;
  std::string state;
  std::int64_t revision = 0;   // 0: no bundle yet
  std::int64_t issued_at = 0;  // coordinator clock, unix seconds
  /// Unix seconds of the last time the coordinator confirmed the cache current (a bundle
  /// applied, or "nothing newer"); nullopt before the first.
  std::optional<std::int64_t> confirmed_at;
  shared::labels::LabelSet labels;
  std::vector<std::string> groups;
  std::map<std::string, CachedSecret, std::less<>> secrets;
  /// From the bundle: the peers keeping this node's envelope, further gossip partners, and the
  /// certificate serials the coordinator revoked.
  std::vector<shared::protocol::Peer> keepers;
  std::vector<shared::protocol::Peer> gossip;
  std::vector<std::string> revoked_serials;
  /// The health checks this node runs.
  std::vector<shared::protocol::Check> checks;
  std::optional<Origin> origin;  // nullopt before the first bundle
};

/// Opens a secret of `view` with the node's X25519 key (AAD: node id, name, version).
Result<shared::crypto::SecretBytes> open_secret(const View& view,
                                                const shared::crypto::X25519PrivateKey& key,
                                                std::string_view name);

/// Thread-safe: one connection behind a mutex; every write is one transaction.
class Cache {
 public:
  /// Opens (creating) the database and migrates it. The data key stays shared with the caller.
  static Result<std::unique_ptr<Cache>> open(const std::filesystem::path& path,
                                             std::shared_ptr<const keystore::DataKey> key);
  ~Cache();
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;

  /// Stores the identity of a fresh join. already_joined unless `replace`; with `replace`
  /// (rejoin) the old identity and every cached bundle row go in the same transaction.
  Result<void> store_identity(const Identity& identity, bool replace = false);
  /// not_joined when there is none; bad_identity when it does not decrypt.
  Result<Identity> identity();
  [[nodiscard]] Result<bool> joined();
  /// After a renewal: the new certificate and the key it certifies, atomically.
  Result<void> update_certificate(std::string_view certificate_pem, std::string_view key_pem);

  /// Verifies `envelope` with the identity's bundle key, parses the bundle, opens every sealed
  /// secret with the node's sealing key and stores it in one transaction. bad_signature,
  /// bad_bundle, wrong_node, not_newer or secret_unopened (a secret this node could not serve)
  /// leave the cache unchanged. Records where it came from; from the coordinator (no
  /// `from_peer`) also `now` as the time the cache was confirmed current.
  Result<shared::protocol::Bundle> apply(shared::crypto::ByteView envelope, std::int64_t now,
                                         const Origin* from_peer = nullptr);
  /// Records that the coordinator confirmed at `now` that the cache is current (an
  /// authenticated answer "nothing newer"); never for a refusal.
  Result<void> touch(std::int64_t now);

  /// The damped states of the node's health checks (replacing what was stored), and back.
  Result<void> store_check_results(const std::vector<shared::protocol::CheckResult>& results);
  Result<std::vector<shared::protocol::CheckResult>> check_results();

  [[nodiscard]] Result<std::int64_t> revision();
  /// The cached envelope, verbatim (for relaying); nullopt before the first bundle.
  Result<std::optional<shared::crypto::Bytes>> envelope();
  Result<View> view();
  /// The cached revision and its keepers, without reading the labels (view() reads them all):
  /// what a node cut off from the coordinator asks its keepers with, every gossip round.
  struct Keepers {
    std::int64_t revision = 0;
    std::vector<shared::protocol::Peer> keepers;
  };
  Result<Keepers> keepers();

  /// The fleet envelope (verified by the caller), stored only when newer than the held one.
  Result<bool> store_fleet(shared::crypto::ByteView envelope, std::int64_t revision);
  Result<std::optional<shared::crypto::Bytes>> fleet();

  /// Keeps another node's envelope verbatim after checking the coordinator's signature; an
  /// older or equal revision than the kept one is not stored (stored=false).
  Result<KeptEnvelope> keep(shared::crypto::ByteView envelope);
  /// Forgets the envelopes of every node not in `node_ids` (no longer kept, or revoked);
  /// returns how many went.
  Result<std::size_t> retain_kept(const std::vector<std::string>& node_ids);
  struct KeptBytes {
    std::int64_t revision = 0;
    shared::crypto::Bytes envelope;
  };
  Result<std::optional<KeptBytes>> kept_envelope(std::string_view node_id);
  Result<KeptSummary> kept();

  /// Re-verifies the stored envelope against the bundle key and checks the rows derived from
  /// it (revision, labels, secrets) agree with it: the cache is self-consistent.
  Result<void> verify();

  [[nodiscard]] const std::filesystem::path& path() const noexcept;

  /// Frees SQLite's page cache (it refills from the file on the next read): called once a
  /// large bundle is stored and rendered, so an idle agent does not keep its pages.
  void release_memory() noexcept;

  /// Process-wide, before any database is opened: no per-connection bulk allocation for
  /// SQLite's page cache (20 pages by default, held until the connection closes), so that
  /// release_memory() gives back every page. False when SQLite was already initialised.
  static bool configure_process_memory() noexcept;

  struct Impl;

 private:
  explicit Cache(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lab::agent::cache

template <>
struct boost::system::is_error_code_enum<lab::agent::cache::CacheError> : std::true_type {};
