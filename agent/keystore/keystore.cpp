#include "agent/keystore/keystore.hpp"

#include "agent/files/atomic_file.hpp"
#include "agent/keystore/tpm.hpp"
#include "shared/crypto/aead.hpp"
#include "shared/crypto/random.hpp"

#include <fmt/format.h>

#include <sys/stat.h>

#include <cerrno>

namespace lab::agent::keystore {
namespace {

namespace crypto = shared::crypto;

bool path_exists(const std::filesystem::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

Result<crypto::SecretBytes> new_key() {
  crypto::SecretBytes key(kDataKeySize);
  if (auto r = crypto::random_fill(key); !r)
    return Error(KeystoreError::io, "random data key: " + r.error().message());
  return key;
}

Result<DataKey> open_tpm(const Options& o, const std::filesystem::path& sealed_path, auto&& make) {
  if (path_exists(sealed_path)) {
    auto bytes = files::read_file(sealed_path, std::size_t{64} * 1024);
    if (!bytes)
      return Error(KeystoreError::io, bytes.error().message());
    LAB_TRY_ASSIGN(SealedBlob blob, parse_blob(crypto::as_bytes(*bytes)));
    LAB_TRY_ASSIGN(crypto::SecretBytes key, tpm_unseal(o.tcti, blob));
    if (key.size() != kDataKeySize)
      return Error(KeystoreError::bad_blob, "the unsealed data key has the wrong size");
    // The blob says what the key was sealed under, whatever the configuration says now.
    return make(std::move(key), !blob.pcrs.empty());
  }
  LAB_TRY_ASSIGN(crypto::SecretBytes key, new_key());
  LAB_TRY_ASSIGN(SealedBlob blob, tpm_seal(o.tcti, key, o.pcrs));
  const crypto::Bytes out = serialize(blob);
  if (auto r = files::write_atomic(sealed_path, crypto::as_chars(out), 0600); !r)
    return Error(KeystoreError::io, r.error().message());
  return make(std::move(key), !o.pcrs.empty());
}

Result<DataKey> open_file(const std::filesystem::path& key_path, auto&& make) {
  if (path_exists(key_path)) {
    struct stat st {};
    if (::stat(key_path.c_str(), &st) != 0)
      return Error(KeystoreError::key_file, errno_error("stat " + key_path.string()).message());
    if ((st.st_mode & 0077) != 0) {
      return Error(KeystoreError::key_file,
                   fmt::format("{} is readable by group or others (mode {:o}); it must be 0600",
                               key_path.string(), st.st_mode & 0777));
    }
    auto bytes = files::read_file(key_path, 4096);
    if (!bytes)
      return Error(KeystoreError::key_file, bytes.error().message());
    if (bytes->size() != kDataKeySize) {
      crypto::cleanse(bytes->data(), bytes->size());
      return Error(
          KeystoreError::key_file,
          fmt::format("{} holds {} bytes, not {}", key_path.string(), bytes->size(), kDataKeySize));
    }
    crypto::SecretBytes key(bytes->begin(), bytes->end());
    crypto::cleanse(bytes->data(), bytes->size());
    return make(std::move(key), false);
  }
  LAB_TRY_ASSIGN(crypto::SecretBytes key, new_key());
  if (auto r = files::write_atomic(key_path, crypto::as_chars(key), 0600); !r)
    return Error(KeystoreError::io, r.error().message());
  return make(std::move(key), false);
}

}  // namespace

const char* protection_name(Protection p) noexcept {
  return p == Protection::tpm ? "tpm" : "file";
}

Result<DataKey> DataKey::open(const Options& options) {
  const auto sealed_path = options.state_dir / kSealedKeyFile;
  const auto key_path = options.state_dir / kPlainKeyFile;
  auto make = [&](crypto::SecretBytes key, bool pcr_policy) -> Result<DataKey> {
    return DataKey(std::move(key), options.protection, pcr_policy);
  };
  if (options.protection == Protection::tpm) {
    if (path_exists(key_path)) {
      return Error(KeystoreError::mode_mismatch,
                   fmt::format("{} holds a file-protected data key but key_protection is "
                               "\"tpm\"; re-join to move this node to the TPM",
                               options.state_dir.string()));
    }
    auto r = open_tpm(options, sealed_path, make);
    if (!r && r.error() == KeystoreError::no_tpm) {
      return Error(KeystoreError::no_tpm,
                   r.error().detail() +
                       "; to run without a TPM set key_protection = \"file\" (the data key is "
                       "then kept in a 0600 file and status reports \"degraded\")");
    }
    return r;
  }
  if (path_exists(sealed_path)) {
    return Error(KeystoreError::mode_mismatch,
                 fmt::format("{} holds a TPM-sealed data key but key_protection is \"file\"",
                             options.state_dir.string()));
  }
  return open_file(key_path, make);
}

Result<DataKey> DataKey::from_bytes(crypto::ByteView key, Protection protection) {
  if (key.size() != kDataKeySize)
    return Error(KeystoreError::key_file, "a data key is 32 bytes");
  return DataKey(crypto::SecretBytes(key.begin(), key.end()), protection, false);
}

Result<crypto::Bytes> DataKey::wrap(crypto::ByteView plaintext, std::string_view aad) const {
  auto r = crypto::wrap(key_, plaintext, crypto::as_bytes(aad));
  if (!r)
    return Error(KeystoreError::wrap_failed, r.error().message());
  return r;
}

Result<crypto::SecretBytes> DataKey::unwrap(crypto::ByteView wrapped, std::string_view aad) const {
  auto r = crypto::unwrap(key_, wrapped, crypto::as_bytes(aad));
  if (!r) {
    return Error(KeystoreError::unwrap_failed,
                 fmt::format("'{}' does not decrypt under this node's data key", aad));
  }
  return r;
}

std::string DataKey::status() const {
  return protection_ == Protection::tpm ? "tpm" : "degraded";
}

std::string DataKey::protection_fact() const {
  if (protection_ == Protection::file)
    return "file";
  return pcr_policy_ ? "tpm+pcr" : "tpm";
}

std::string protection_fact(const Options& options) {
  if (options.protection == Protection::file)
    return "file";
  return options.pcrs.empty() ? "tpm" : "tpm+pcr";
}

}  // namespace lab::agent::keystore
