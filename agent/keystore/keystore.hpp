#pragma once
// The node's data key: 32 random bytes that wrap every secret the agent keeps at rest (node
// private keys, cached secret boxes). Normally sealed by the TPM, so a copy of the state
// directory is useless on another machine; `key_protection = "file"` keeps it in a 0600 file
// instead, and status reports that as degraded.

#include "agent/keystore/error.hpp"
#include "shared/crypto/bytes.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lab::agent::keystore {

enum class Protection { tpm, file };

struct Options {
  std::filesystem::path state_dir;  // holds datakey.sealed or datakey.key
  Protection protection = Protection::tpm;
  std::string tcti = "device:/dev/tpmrm0";  // never empty: tctildr would guess a TPM
  std::vector<std::uint32_t> pcrs;          // PCR policy on the SHA-256 bank; empty: none
};

/// "tpm" / "file"; invalid_argument on anything else is the caller's (config) job.
const char* protection_name(Protection p) noexcept;

/// The unsealed data key. Move-only; the key bytes are wiped when it goes.
class DataKey {
 public:
  /// Opens the data key of `options.state_dir`, creating and sealing a new one only when none
  /// exists yet. A failure never replaces or changes the existing key file: other_tpm,
  /// pcr_policy_failed, no_tpm (with a hint to choose file mode), mode_mismatch, key_file.
  static Result<DataKey> open(const Options& options);

  /// From raw bytes (tests and tools).
  static Result<DataKey> from_bytes(shared::crypto::ByteView key, Protection protection);

  DataKey(DataKey&&) noexcept = default;
  DataKey& operator=(DataKey&&) noexcept = default;
  DataKey(const DataKey&) = delete;
  DataKey& operator=(const DataKey&) = delete;
  ~DataKey() = default;

  /// AES-256-GCM with a fresh nonce; `aad` names what is wrapped (so rows cannot be swapped).
  [[nodiscard]] Result<shared::crypto::Bytes> wrap(shared::crypto::ByteView plaintext,
                                                   std::string_view aad) const;
  /// unwrap_failed when the key, the AAD or any byte differs.
  [[nodiscard]] Result<shared::crypto::SecretBytes> unwrap(shared::crypto::ByteView wrapped,
                                                           std::string_view aad) const;

  [[nodiscard]] Protection protection() const noexcept { return protection_; }
  /// "tpm" or "degraded" (file mode), as the status API reports it.
  [[nodiscard]] std::string status() const;
  /// "tpm+pcr" (sealed under a PCR policy), "tpm" or "file": what the agent reports to the
  /// coordinator as facts["key_protection"], which decides secrets that require a TPM.
  [[nodiscard]] std::string protection_fact() const;

 private:
  DataKey(shared::crypto::SecretBytes key, Protection p, bool pcr_policy)
      : key_(std::move(key)), protection_(p), pcr_policy_(pcr_policy) {}
  shared::crypto::SecretBytes key_;
  Protection protection_;
  bool pcr_policy_;
};

/// The protection_fact() a data key created with `options` has (before it exists: a join that
/// makes a fresh key reports it).
std::string protection_fact(const Options& options);

inline constexpr const char* kSealedKeyFile = "datakey.sealed";
inline constexpr const char* kPlainKeyFile = "datakey.key";
inline constexpr std::size_t kDataKeySize = 32;

}  // namespace lab::agent::keystore
