#pragma once
// Installs labd on one existing host over SSH and enrols it: detect the OS, upload the agent,
// install a service, mint a token bound to the host, run `labd join`, confirm with the
// coordinator. Any failing step rolls the host back and names the step.
#include "bootstrap/rollout/rollout.hpp"
#include "bootstrap/ssh/session.hpp"
#include "shared/errors/error.hpp"
#include "shared/labels/label.hpp"

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace lab::bootstrap::sshinstall {

enum class InstallError {
  bad_setting = 1,     // an --agent-set key or value that cannot be written safely
  arch_mismatch,       // the host's architecture is not the agent binary's
  remote_failed,       // a remote command exited non-zero; detail has its first error line
  join_refused,        // `labd join` failed on the host
  not_confirmed,       // the coordinator does not show the node after the join
  coordinator_failed,  // the operator API refused or failed a request
  bad_upload_dir,      // mktemp on the host printed no usable directory
};
const boost::system::error_category& install_category() noexcept;
inline boost::system::error_code make_error_code(InstallError e) noexcept {
  return {static_cast<int>(e), install_category()};
}

/// What the installer needs from the coordinator (the operator API in production).
class Enroller {
 public:
  virtual ~Enroller() = default;
  struct Minted {
    std::string token_id;
    std::string join_string;
  };
  /// A one-time token bound to `host` (the name the host reports) with `labels`.
  virtual Result<Minted> mint(const std::string& host, const shared::labels::LabelSet& labels) = 0;
  virtual Result<void> revoke_token(const std::string& token_id) = 0;
  /// The node a token enrolled, or empty while unused.
  virtual Result<std::string> token_node(const std::string& token_id) = 0;
  /// Whether the node exists and is not revoked.
  virtual Result<bool> node_active(const std::string& node_id) = 0;
  virtual Result<void> revoke_node(const std::string& node_id) = 0;
};

struct InstallOptions {
  ssh::ConnectOptions connect;
  shared::labels::LabelSet labels;
  std::filesystem::path agent;                      // the labd binary to upload
  std::string agent_arch;                           // `uname -m` it runs on, e.g. "x86_64"
  std::filesystem::path package;                    // optional labd .deb, used on Debian hosts
  std::map<std::string, std::string> agent_config;  // written to /etc/lab/labd.toml
  std::chrono::seconds join_timeout{60};
};

/// Runs every step for one host; one call is one attempt of the rollout.
rollout::Attempt install(const std::string& target, const InstallOptions& options,
                         Enroller& enroller);

/// The remote files the installer writes (removed again on rollback). Uploads go to a fresh
/// directory made by `mktemp -d` (mode 0700), $TMPDIR/lab-install.XXXXXXXXXX or
/// /tmp/lab-install.XXXXXXXXXX, removed once its content is installed, and on rollback.
inline constexpr const char* kAgentPath = "/usr/local/bin/labd";
/// Where the labd package puts it (with its unit in /lib/systemd/system); a rollback purges it.
inline constexpr const char* kPackagedAgentPath = "/usr/bin/labd";
inline constexpr const char* kSupervisorPath = "/usr/local/lib/lab/labd-supervise";
inline constexpr const char* kUnitPath = "/etc/systemd/system/labd.service";
inline constexpr const char* kConfigPath = "/etc/lab/labd.toml";

}  // namespace lab::bootstrap::sshinstall

template <>
struct boost::system::is_error_code_enum<lab::bootstrap::sshinstall::InstallError>
    : std::true_type {};
