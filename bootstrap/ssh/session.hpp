#pragma once
// One SSH connection to one host (libssh): host-key verification against a known_hosts file,
// authentication, remote commands and SFTP uploads. Blocking: run it on a worker thread.
#include "shared/errors/error.hpp"

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace lab::bootstrap::ssh {

enum class SshError {
  bad_target = 1,      // "[user@]host[:port]" that does not parse
  connect_failed,      // TCP connect or SSH handshake failed (retryable)
  host_key_unknown,    // not in known_hosts and new keys are not accepted
  host_key_changed,    // known_hosts holds another key for this host: possible MITM
  known_hosts_failed,  // known_hosts cannot be read or written
  auth_failed,         // no offered method was accepted
  key_file_failed,     // the identity file cannot be read or decrypted
  channel_failed,      // the session dropped while a command or transfer ran (retryable)
  sftp_failed,         // SFTP subsystem or a remote file operation failed
  timeout,             // a remote command ran past its deadline
};
const boost::system::error_category& ssh_category() noexcept;
inline boost::system::error_code make_error_code(SshError e) noexcept {
  return {static_cast<int>(e), ssh_category()};
}
/// Whether an error means "the network or the host is down" (worth a retry) rather than
/// "the host or our credentials are wrong" (never retried).
bool is_connection_error(const Error& error) noexcept;

/// "[user@]host[:port]"; IPv6 literals in brackets: "root@[fd00::1]:2222".
struct Target {
  std::string user = "root";
  std::string host;
  int port = 22;
  [[nodiscard]] std::string to_string() const;
};
Result<Target> parse_target(std::string_view text);

struct ConnectOptions {
  std::filesystem::path known_hosts;  // default ~/.ssh/known_hosts
  bool accept_new = false;            // record an unknown key instead of refusing
  std::filesystem::path identity;     // key file; empty: ssh-agent, then the default keys
  std::string password;               // from a prompt or LAB_SSH_PASSWORD, never argv
  std::chrono::seconds connect_timeout{10};
};

/// What a remote command did.
struct CommandResult {
  int exit_status = -1;
  std::string out;
  std::string err;
};

class Session {
 public:
  /// Connects, verifies the host key (a changed key is refused naming the old and the new
  /// SHA-256 fingerprints), then authenticates: agent, identity file, password, in that order.
  static Result<std::unique_ptr<Session>> open(const Target& target, const ConnectOptions& options);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();

  /// Runs `command` through the remote shell; stdin is closed. A non-zero exit status is a
  /// successful result: look at CommandResult.exit_status.
  Result<CommandResult> run(std::string_view command,
                            std::chrono::seconds timeout = std::chrono::seconds(120));
  /// Writes `local` to `remote` over SFTP with `mode`, replacing any existing file.
  Result<void> upload(const std::filesystem::path& local, std::string_view remote, int mode);
  /// The server's host key fingerprint, "SHA256:…".
  [[nodiscard]] const std::string& fingerprint() const noexcept { return fingerprint_; }

 private:
  struct Handle;
  explicit Session(std::unique_ptr<Handle> handle, std::string fingerprint);
  std::unique_ptr<Handle> handle_;
  std::string fingerprint_;
};

}  // namespace lab::bootstrap::ssh

template <>
struct boost::system::is_error_code_enum<lab::bootstrap::ssh::SshError> : std::true_type {};
