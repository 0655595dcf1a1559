#pragma once
// Files rendered from the cache for the rest of the machine: labels.json, an env file, one
// file per entitled secret (0400, meant for tmpfs) and external facts for OpenVox/Puppet.
// Every file is replaced atomically (temp, fsync, rename, fsync dir), so a reader sees the old
// or the new content, never a mix.

#include "agent/cache/cache.hpp"
#include "shared/crypto/keys.hpp"
#include "shared/errors/error.hpp"

#include <filesystem>
#include <string>

namespace lab::agent::render {

enum class RenderError {
  write_failed = 1,  // a file could not be written (detail names it)
  bad_secret_name,   // a secret name that cannot be a file name
  secret_unopened,   // a cached secret did not open with the node key
};
const boost::system::error_category& render_category() noexcept;
inline boost::system::error_code make_error_code(RenderError e) noexcept {
  return {static_cast<int>(e), render_category()};
}

/// Where to write; an empty path turns that output off.
struct Paths {
  std::filesystem::path labels_json = "/run/lab/labels.json";
  std::filesystem::path env_file = "/run/lab/labels.env";
  std::filesystem::path secrets_dir = "/run/lab/secrets";
  /// ".yaml"/".yml" writes YAML, anything else JSON.
  std::filesystem::path facts_file = "/etc/puppetlabs/facter/facts.d/lab.json";
};

/// "example.com/role" → "LAB_LABEL_EXAMPLE_COM_ROLE".
std::string env_name(std::string_view label_key);

/// labels.json content: the labels as one JSON object.
std::string labels_json(const cache::View& view);
/// Env file content: LAB_NODE_ID, LAB_REVISION, then LAB_LABEL_<KEY>=value per label.
std::string env_file(const cache::View& view);
/// External facts: lab_labels (object) and lab_revision (integer), JSON or YAML.
std::string facts(const cache::View& view, bool yaml);

/// Writes every enabled output. Secret files not in the view are removed. Stops at the first
/// failure and returns it; files already replaced stay replaced (each one is consistent).
Result<void> render(const Paths& paths, const cache::View& view,
                    const shared::crypto::X25519PrivateKey& key);

}  // namespace lab::agent::render

template <>
struct boost::system::is_error_code_enum<lab::agent::render::RenderError> : std::true_type {};
