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
  input_too_large,     // more input for a remote command than run() may write unread
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

  /// Runs `command` through the remote shell with `input` on its stdin, which is then closed:
  /// the way to hand a command a secret without putting it on a command line, which every user
  /// of the host can read. `input` is written before any output is read, so it must be small
  /// (at most kMaxInput, well within the channel's window; more is input_too_large). A
  /// non-zero exit status is a successful result: look at CommandResult.exit_status.
  Result<CommandResult> run(std::string_view command,
                            std::chrono::seconds timeout = std::chrono::seconds(120),
                            std::string_view input = {});
  static constexpr std::size_t kMaxInput = std::size_t{16} * 1024;
  /// Creates `remote` over SFTP with `mode` and writes `local` into it. Refuses (sftp_failed)
  /// when `remote` exists, so a file or symlink planted there is never written through; upload
  /// into a directory only this user can write. A partly written file is removed.
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
