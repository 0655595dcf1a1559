#include "bootstrap/ssh/session.hpp"

#include <libssh/libssh.h>
#include <libssh/sftp.h>

#include <fcntl.h>

#include <array>
#include <charconv>
#include <fstream>
#include <system_error>

namespace lab::bootstrap::ssh {

const boost::system::error_category& ssh_category() noexcept {
  static const ErrorCategory<SshError> kCategory("lab.ssh", [](SshError e) noexcept -> const char* {
    switch (e) {
      case SshError::bad_target:
        return "bad SSH target";
      case SshError::connect_failed:
        return "SSH connection failed";
      case SshError::host_key_unknown:
        return "unknown host key";
      case SshError::host_key_changed:
        return "host key changed";
      case SshError::known_hosts_failed:
        return "known_hosts file error";
      case SshError::auth_failed:
        return "SSH authentication failed";
      case SshError::key_file_failed:
        return "identity file error";
      case SshError::channel_failed:
        return "SSH session lost";
      case SshError::sftp_failed:
        return "SFTP failed";
      case SshError::timeout:
        return "remote command timed out";
      case SshError::input_too_large:
        return "too much input for a remote command";
    }
    return "SSH error";
  });
  return kCategory;
}

bool is_connection_error(const Error& error) noexcept {
  return error == SshError::connect_failed || error == SshError::channel_failed;
}

std::string Target::to_string() const {
  const bool v6 = host.find(':') != std::string::npos;
  std::string out = user + "@" + (v6 ? "[" + host + "]" : host);
  if (port != 22) {
    out += ":" + std::to_string(port);
  }
  return out;
}

Result<Target> parse_target(std::string_view text) {
  Target t;
  const std::string original(text);
  if (const auto at = text.rfind('@'); at != std::string_view::npos) {
    t.user = std::string(text.substr(0, at));
    text.remove_prefix(at + 1);
    if (t.user.empty()) {
      return Error(SshError::bad_target, "empty user name in '" + original + "'");
    }
  }
  std::string_view port_text;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      return Error(SshError::bad_target, "missing ']' in '" + original + "'");
    }
    t.host = std::string(text.substr(1, close - 1));
    text.remove_prefix(close + 1);
    if (text.starts_with(':')) {
      port_text = text.substr(1);
    } else if (!text.empty()) {
      return Error(SshError::bad_target, "unexpected text after ']' in '" + original + "'");
    }
  } else if (const auto colon = text.find(':'); colon != std::string_view::npos) {
    t.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  } else {
    t.host = std::string(text);
  }
  if (t.host.empty()) {
    return Error(SshError::bad_target, "no host in '" + original + "'");
  }
  for (const char c : t.host) {
    if (c <= ' ' || c == '/' || c == '\'' || c == '"') {
      return Error(SshError::bad_target, "invalid character in host of '" + original + "'");
    }
  }
  if (!port_text.empty() || text.ends_with(':')) {
    int port = 0;
    const auto* end = port_text.data() + port_text.size();
    const auto [p, ec] = std::from_chars(port_text.data(), end, port);
    if (ec != std::errc() || p != end || port < 1 || port > 65535) {
      return Error(SshError::bad_target, "port must be 1-65535 in '" + original + "', got '" +
                                             std::string(port_text) + "'");
    }
    t.port = port;
  }
  return t;
}

struct Session::Handle {
  ssh_session s = nullptr;
  Handle() : s(ssh_new()) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() {
    if (s != nullptr) {
      if (ssh_is_connected(s) != 0) {
        ssh_disconnect(s);
      }
      ssh_free(s);
    }
  }
};

namespace {

std::string fingerprint_of(ssh_key key) {
  unsigned char* hash = nullptr;
  size_t len = 0;
  if (key == nullptr ||
      ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &len) != SSH_OK) {
    return "SHA256:?";
  }
  char* text = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, len);
  std::string out = text != nullptr ? text : "SHA256:?";
  ssh_string_free_char(text);
  ssh_clean_pubkey_hash(&hash);
  return out;
}

Error session_error(SshError code, ssh_session s, std::string what) {
  const char* reason = ssh_get_error(s);
  if (reason != nullptr && *reason != '\0') {
    what += ": ";
    what += reason;
  }
  return {code, std::move(what)};
}

// The fingerprint known_hosts holds for this host, for the "changed key" message. libssh hands
// back no entry for a changed key, so read the file: parse_line matches hashed names too.
std::string known_fingerprint(const std::filesystem::path& known_hosts, const Target& target) {
  const std::string host =
      target.port == 22 ? target.host : "[" + target.host + "]:" + std::to_string(target.port);
  std::ifstream in(known_hosts);
  std::string line;
  while (std::getline(in, line)) {
    ssh_knownhosts_entry* entry = nullptr;
    if (ssh_known_hosts_parse_line(host.c_str(), line.c_str(), &entry) == SSH_OK &&
        entry != nullptr) {
      std::string fp = fingerprint_of(entry->publickey);
      ssh_knownhosts_entry_free(entry);
      return fp;
    }
    ssh_knownhosts_entry_free(entry);
  }
  return "SHA256:?";
}

Result<void> verify_host_key(ssh_session s, const Target& target, const ConnectOptions& options,
                             const std::string& offered) {
  const std::string who = target.host + ":" + std::to_string(target.port);
  switch (ssh_session_is_known_server(s)) {
    case SSH_KNOWN_HOSTS_OK:
      return {};
    case SSH_KNOWN_HOSTS_CHANGED:
    case SSH_KNOWN_HOSTS_OTHER:
      return Error(SshError::host_key_changed,
                   "host key of " + who + " changed: " + options.known_hosts.string() + " has " +
                       known_fingerprint(options.known_hosts, target) + ", the server offers " +
                       offered);
    case SSH_KNOWN_HOSTS_NOT_FOUND:
    case SSH_KNOWN_HOSTS_UNKNOWN:
      if (!options.accept_new) {
        return Error(
            SshError::host_key_unknown,
            who + " offers " + offered + ", which is not in " + options.known_hosts.string() +
                "; compare it with the host's own key, then use --accept-new to record it");
      }
      if (const auto dir = options.known_hosts.parent_path(); !dir.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(dir, ec);
      }
      if (ssh_session_update_known_hosts(s) != SSH_OK) {
        return session_error(SshError::known_hosts_failed, s,
                             "recording the key of " + who + " in " + options.known_hosts.string());
      }
      return {};
    case SSH_KNOWN_HOSTS_ERROR:
      break;
  }
  return session_error(SshError::known_hosts_failed, s, "reading " + options.known_hosts.string());
}

Result<void> authenticate(ssh_session s, const Target& target, const ConnectOptions& options) {
  int rc = ssh_userauth_none(s, nullptr);
  if (rc == SSH_AUTH_SUCCESS) {
    return {};
  }
  if (rc == SSH_AUTH_ERROR) {
    return session_error(SshError::connect_failed, s, "authenticating");
  }
  const int methods = ssh_userauth_list(s, nullptr);
  std::string tried;
  if ((methods & SSH_AUTH_METHOD_PUBLICKEY) != 0) {
    if (options.identity.empty()) {
      tried = "ssh-agent and default keys";
      rc = ssh_userauth_publickey_auto(s, nullptr, nullptr);
    } else {
      tried = "key " + options.identity.string();
      ssh_key key = nullptr;
      if (ssh_pki_import_privkey_file(options.identity.c_str(), nullptr, nullptr, nullptr, &key) !=
          SSH_OK) {
        return Error(SshError::key_file_failed,
                     "cannot read private key " + options.identity.string() +
                         " (missing, unreadable, or protected by a passphrase)");
      }
      rc = ssh_userauth_publickey(s, nullptr, key);
      ssh_key_free(key);
    }
    if (rc == SSH_AUTH_SUCCESS) {
      return {};
    }
    if (rc == SSH_AUTH_ERROR) {
      return session_error(SshError::connect_failed, s, "authenticating");
    }
  }
  if (!options.password.empty() && (methods & SSH_AUTH_METHOD_PASSWORD) != 0) {
    tried += tried.empty() ? "password" : ", password";
    rc = ssh_userauth_password(s, nullptr, options.password.c_str());
    if (rc == SSH_AUTH_SUCCESS) {
      return {};
    }
    if (rc == SSH_AUTH_ERROR) {
      return session_error(SshError::connect_failed, s, "authenticating");
    }
  }
  return Error(SshError::auth_failed, target.user + "@" + target.host + " refused " +
                                          (tried.empty() ? "every method we have" : tried));
}

}  // namespace

Session::Session(std::unique_ptr<Handle> handle, std::string fingerprint)
    : handle_(std::move(handle)), fingerprint_(std::move(fingerprint)) {}

Session::~Session() = default;

Result<std::unique_ptr<Session>> Session::open(const Target& target,
                                               const ConnectOptions& options) {
  auto handle = std::make_unique<Handle>();
  ssh_session s = handle->s;
  if (s == nullptr) {
    return Error(SshError::connect_failed, "cannot allocate an SSH session");
  }
  const unsigned int port = static_cast<unsigned int>(target.port);
  const long timeout = static_cast<long>(options.connect_timeout.count());
  const int no = 0;
  ssh_options_set(s, SSH_OPTIONS_HOST, target.host.c_str());
  ssh_options_set(s, SSH_OPTIONS_PORT, &port);
  ssh_options_set(s, SSH_OPTIONS_USER, target.user.c_str());
  ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &timeout);
  ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &no);
  ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, options.known_hosts.c_str());
  ssh_options_set(s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null");
  if (ssh_connect(s) != SSH_OK) {
    return session_error(SshError::connect_failed, s, "connecting to " + target.to_string());
  }
  ssh_key key = nullptr;
  if (ssh_get_server_publickey(s, &key) != SSH_OK) {
    return session_error(SshError::connect_failed, s, "reading the host key");
  }
  std::string fingerprint = fingerprint_of(key);
  ssh_key_free(key);
  LAB_TRY(verify_host_key(s, target, options, fingerprint));
  LAB_TRY(authenticate(s, target, options));
  return std::unique_ptr<Session>(new Session(std::move(handle), std::move(fingerprint)));
}

Result<CommandResult> Session::run(std::string_view command, std::chrono::seconds timeout,
                                   std::string_view input) {
  if (input.size() > kMaxInput) {
    return Error(SshError::input_too_large,
                 std::to_string(input.size()) + " bytes, at most " + std::to_string(kMaxInput));
  }
  ssh_session s = handle_->s;
  ssh_channel ch = ssh_channel_new(s);
  if (ch == nullptr) {
    return session_error(SshError::channel_failed, s, "opening a channel");
  }
  const std::unique_ptr<ssh_channel_struct, void (*)(ssh_channel)> guard(ch, [](ssh_channel c) {
    ssh_channel_close(c);
    ssh_channel_free(c);
  });
  const std::string cmd(command);
  if (ssh_channel_open_session(ch) != SSH_OK ||
      ssh_channel_request_exec(ch, cmd.c_str()) != SSH_OK) {
    return session_error(SshError::channel_failed, s, "starting a remote command");
  }
  while (!input.empty()) {
    const int n = ssh_channel_write(ch, input.data(), static_cast<uint32_t>(input.size()));
    if (n <= 0) {
      return session_error(SshError::channel_failed, s, "writing the command's input");
    }
    input.remove_prefix(static_cast<std::size_t>(n));
  }
  ssh_channel_send_eof(ch);
  CommandResult result;
  std::array<char, 16384> buf{};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const int n = ssh_channel_read_timeout(ch, buf.data(), buf.size(), 0, 200);
    if (n == SSH_ERROR) {
      return session_error(SshError::channel_failed, s, "reading command output");
    }
    result.out.append(buf.data(), static_cast<std::size_t>(std::max(n, 0)));
    int m = 0;
    while ((m = ssh_channel_read_nonblocking(ch, buf.data(), buf.size(), 1)) > 0) {
      result.err.append(buf.data(), static_cast<std::size_t>(m));
    }
    if (m == SSH_ERROR) {
      return session_error(SshError::channel_failed, s, "reading command errors");
    }
    if (n == 0 && ssh_channel_is_eof(ch) != 0) {
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Error(SshError::timeout,
                   "'" + cmd + "' ran longer than " + std::to_string(timeout.count()) + " s");
    }
  }
  result.exit_status = ssh_channel_get_exit_status(ch);
  if (result.exit_status < 0 && ssh_is_connected(s) == 0) {
    return session_error(SshError::channel_failed, s, "waiting for the exit status");
  }
  return result;
}

Result<void> Session::upload(const std::filesystem::path& local, std::string_view remote,
                             int mode) {
  std::ifstream in(local, std::ios::binary);
  if (!in) {
    return Error(SshError::sftp_failed, "cannot read " + local.string());
  }
  ssh_session s = handle_->s;
  sftp_session sftp = sftp_new(s);
  if (sftp == nullptr) {
    return session_error(SshError::channel_failed, s, "starting SFTP");
  }
  const std::unique_ptr<sftp_session_struct, void (*)(sftp_session)> guard(sftp, sftp_free);
  if (sftp_init(sftp) != SSH_OK) {
    return session_error(SshError::sftp_failed, s, "starting SFTP");
  }
  const std::string target(remote);
  // O_EXCL (SSH_FXF_EXCL): never open what someone else put at this name, a symlink included.
  sftp_file file =
      sftp_open(sftp, target.c_str(), O_WRONLY | O_CREAT | O_EXCL, static_cast<mode_t>(mode));
  if (file == nullptr) {
    return session_error(SshError::sftp_failed, s, "creating " + target);
  }
  // One SFTP write per 192 KiB: each write waits for its status, so fewer, larger writes are
  // what makes an upload fast (OpenSSH's sftp-server takes messages up to 256 KiB).
  std::vector<char> buf(std::size_t{192} * 1024);
  bool ok = true;
  while (ok && in) {
    in.read(buf.data(), buf.size());
    const auto n = static_cast<std::size_t>(in.gcount());
    if (n > 0 && sftp_write(file, buf.data(), n) != static_cast<ssize_t>(n)) {
      ok = false;
    }
  }
  if (sftp_close(file) != SSH_OK || !ok) {
    sftp_unlink(sftp, target.c_str());
    if (ssh_is_connected(s) == 0) {
      return session_error(SshError::channel_failed, s, "writing " + target);
    }
    return session_error(SshError::sftp_failed, s, "writing " + target);
  }
  // The server's umask applied at creation; the mode asked for is exact.
  if (sftp_chmod(sftp, target.c_str(), static_cast<mode_t>(mode)) != SSH_OK) {
    sftp_unlink(sftp, target.c_str());
    return session_error(SshError::sftp_failed, s, "chmod " + target);
  }
  return {};
}

}  // namespace lab::bootstrap::ssh
