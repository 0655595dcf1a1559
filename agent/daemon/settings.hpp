#pragma once
// labd's configuration: /etc/lab/labd.toml (or --config), LABD_* environment variables and
// command-line flags, on shared/config. Every path the agent touches is here, so tests and the
// demo run whole agents in a temporary directory.

#include "agent/keystore/keystore.hpp"
#include "agent/localapi/api.hpp"
#include "agent/render/render.hpp"
#include "shared/config/config.hpp"
#include "shared/errors/error.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lab::agent::daemon {

inline constexpr const char* kDefaultConfigFile = "/etc/lab/labd.toml";

struct Settings {
  std::filesystem::path data_dir = "/var/lib/labd";
  std::filesystem::path socket = "/run/lab/labd.sock";
  keystore::Protection key_protection = keystore::Protection::tpm;
  std::string tcti = "device:/dev/tpmrm0";
  std::vector<std::uint32_t> tpm_pcrs;
  render::Paths render;
  std::chrono::seconds poll_wait{55};
  std::chrono::seconds backoff_initial{1};
  std::chrono::seconds backoff_cap{60};
  std::string log_level = "info";
  std::string peer_listen = "0.0.0.0:8444";  // "off": no peer listener
  std::string peer_advertise;                // empty: derived (see schema)
  std::chrono::seconds gossip_interval{10};
  std::vector<localapi::SecretAccess> secret_access;
  std::filesystem::path config_run_file;   // last_run_summary.yaml; empty: off
  std::filesystem::path metrics_textfile;  // empty: off
  std::chrono::seconds metrics_textfile_interval{15};

  [[nodiscard]] std::filesystem::path cache_file() const { return data_dir / "cache.db"; }
  /// Who this node is, in clear (node id, name, coordinator): `labd status` reads it without
  /// the TPM, and an installer uses it to tell a joined host.
  [[nodiscard]] std::filesystem::path node_file() const { return data_dir / "node.json"; }
  [[nodiscard]] keystore::Options keystore_options() const;
};

/// The keys labd accepts (documented by `labd config --help`-style listings).
const shared::config::Schema& schema();

/// Where settings come from. `config_file` unset: /etc/lab/labd.toml when it exists, else
/// $LABD_CONFIG when set. `environment`: the process environment (every LABD_<KEY> sets <key>,
/// e.g. LABD_DATA_DIR, LABD_RENDER_SECRETS_DIR).
struct SettingSources {
  std::optional<std::filesystem::path> config_file;
  std::map<std::string, std::string, std::less<>> environment;
  std::vector<shared::config::Flag> flags;
};

/// The LABD_* variables of this process.
std::map<std::string, std::string, std::less<>> labd_environment();

/// Loads and validates; errors name the file:line, variable or flag.
Result<Settings> load_settings(const SettingSources& sources);

}  // namespace lab::agent::daemon
