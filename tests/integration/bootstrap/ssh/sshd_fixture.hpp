#pragma once
// A real OpenSSH server for tests: its own host key, client key, config and port on loopback,
// run as a foreground child. Optionally inside a private mount and UTS namespace with its own
// hostname, its own /usr/local, /etc/lab, /var/lib/labd, /run/lab and /tmp, so that several
// "hosts" on one machine do not share what an installer writes, and its own /etc/passwd with a
// second, unprivileged user (kLocalUser) to play another local user of the host.
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

namespace lab::tests {

inline int free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  // NOLINTBEGIN(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  // NOLINTEND(cppcoreguidelines-pro-type-reinterpret-cast)
  ::close(fd);
  if (!ok) {
    throw std::runtime_error("no free TCP port on loopback");
  }
  return ntohs(addr.sin_port);
}

class SshServer {
 public:
  struct Options {
    std::string hostname;  // non-empty: private mount + UTS namespace with this hostname
    std::string listen = "127.0.0.1";
    std::filesystem::path authorized_key;  // a public key to accept; default: its own client key
  };

  /// The user a namespaced host has besides root; it owns nothing of the installer's.
  static constexpr const char* kLocalUser = "mallory";

  SshServer() : SshServer(Options{}) {}
  explicit SshServer(Options options) : options_(std::move(options)), port_(free_tcp_port()) {
    std::filesystem::create_directories("/run/sshd");
    keygen(dir_ / "host_key");
    keygen(dir_ / "client_key");
    std::filesystem::copy_file(
        options_.authorized_key.empty() ? dir_ / "client_key.pub" : options_.authorized_key,
        dir_ / "authorized_keys");
    if (namespaced()) {
      dir_.write("passwd", read_file("/etc/passwd") + kLocalUser +
                               ":x:64321:64321:another user:/nonexistent:/usr/sbin/nologin\n");
      dir_.write("group", read_file("/etc/group") + kLocalUser + ":x:64321:\n");
    }
    const auto files = files_dir();
    dir_.write("sshd_config",
               "Port " + std::to_string(port_) + "\nListenAddress " + options_.listen +
                   "\nHostKey " + (files / "host_key").string() +
                   "\nPidFile none\nAuthorizedKeysFile " + (files / "authorized_keys").string() +
                   "\nStrictModes no\nUsePAM no\nPermitRootLogin yes\n"
                   "PasswordAuthentication yes\nKbdInteractiveAuthentication no\n"
                   "Subsystem sftp internal-sftp\nLogLevel ERROR\nMaxStartups 100\n");
    start();
  }
  SshServer(const SshServer&) = delete;
  SshServer& operator=(const SshServer&) = delete;
  ~SshServer() { kill_host(); }

  /// Starts (again) on the same port; waits until it accepts connections.
  void start() {
    std::string cmd = "exec /usr/sbin/sshd -D -e -f " + (files_dir() / "sshd_config").string();
    if (namespaced()) {
      const auto root = dir_ / "root";
      // sshd's own files stay reachable once /tmp, where they are, is the host's own.
      std::filesystem::create_directories(kFilesMount);
      std::string mounts = "mount --bind " + dir_.path().string() + " " + kFilesMount + " && ";
      for (const char* d : {"usr/local", "etc/lab", "var/lib/labd", "run/lab", "tmp"}) {
        std::filesystem::create_directories(root / d);
        std::filesystem::create_directories(std::filesystem::path("/") / d);
        mounts += "mount --bind " + (root / d).string() + " /" + d + " && ";
      }
      std::filesystem::permissions(
          root / "tmp", std::filesystem::perms::all | std::filesystem::perms::sticky_bit);
      for (const char* f : {"passwd", "group"}) {
        mounts += "mount --bind " + (files_dir() / f).string() + " /etc/" + f + " && ";
      }
      cmd = "hostname " + options_.hostname + " && " + mounts + "mkdir -p /usr/local/bin && " + cmd;
      cmd = "exec unshare --mount --uts --propagation private sh -c '" + cmd + "'";
    }
    ChildProcess::Options child;
    child.argv = {"sh", "-c", cmd};
    server_.emplace(ChildProcess::start(std::move(child)));
    const bool up = wait_until([&] {
      return run({"bash", "-c",
                  "exec 3<>/dev/tcp/" + options_.listen + "/" + std::to_string(port_)},
                 2s)
                 .exit_code == 0;
    });
    if (!up) {
      throw std::runtime_error("sshd did not start: " + server_->output());
    }
    if (namespaced()) {
      mount_ns_ = namespace_of(server_->pid());
    }
  }
  /// Starts `script` (sh) on this namespaced host as kLocalUser, without privileges, as a child
  /// of the test (killed with the host, or when the returned process is destroyed).
  [[nodiscard]] ChildProcess start_as_local_user(const std::string& script) const {
    ChildProcess::Options child;
    child.argv = {"nsenter", "--target", std::to_string(server_->pid()),
                  "--mount", "--uts",    "--wd=/"};
    child.argv.insert(child.argv.end(), {"setpriv", "--reuid", kLocalUser, "--regid", kLocalUser,
                                         "--clear-groups", "sh", "-c", script});
    return ChildProcess::start(std::move(child));
  }
  void stop() {
    if (server_) {
      server_->stop(2s);
      server_.reset();
    }
  }
  /// SIGKILL, as when the host dies.
  void kill() {
    if (server_) {
      server_->signal(SIGKILL);
      server_->wait(5s);
      server_.reset();
    }
  }
  /// SIGKILL to sshd and everything of this host's private namespace (sessions, the agent and
  /// its supervisor): the host dies, its TCP connections are reset.
  void kill_host() {
    if (!mount_ns_.empty()) {
      for (int round = 0; round < 3; ++round) {
        for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
          const std::string name = entry.path().filename();
          if (name.find_first_not_of("0123456789") != std::string::npos) {
            continue;
          }
          const pid_t pid = std::stoi(name);
          if (pid != ::getpid() && namespace_of(pid) == mount_ns_) {
            ::kill(pid, SIGKILL);
          }
        }
      }
    }
    kill();
  }
  /// A new host key, as after a reinstall (or an attacker in the middle).
  void regenerate_host_key() {
    std::filesystem::remove(dir_ / "host_key");
    std::filesystem::remove(dir_ / "host_key.pub");
    keygen(dir_ / "host_key");
  }

  [[nodiscard]] int port() const noexcept { return port_; }
  [[nodiscard]] std::string target(const std::string& user = "root") const {
    return user + "@" + options_.listen + ":" + std::to_string(port_);
  }
  [[nodiscard]] std::filesystem::path client_key() const { return dir_ / "client_key"; }
  /// The directory that stands in for this host's /usr/local, /etc/lab, /tmp, …
  [[nodiscard]] std::filesystem::path root() const { return dir_ / "root"; }
  [[nodiscard]] std::string output() const { return server_ ? server_->output() : ""; }

 private:
  static void keygen(const std::filesystem::path& path) {
    const auto r = run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path.string()});
    if (r.exit_code != 0) {
      throw std::runtime_error("ssh-keygen failed: " + r.output);
    }
  }

  // Where a namespaced host's sshd sees dir_.
  static constexpr const char* kFilesMount = "/run/lab-sshd";
  [[nodiscard]] bool namespaced() const { return !options_.hostname.empty(); }
  [[nodiscard]] std::filesystem::path files_dir() const {
    return namespaced() ? std::filesystem::path(kFilesMount) : dir_.path();
  }

  static std::string namespace_of(pid_t pid) {
    std::error_code ec;
    auto link = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/ns/mnt", ec);
    return ec ? std::string() : link.string();
  }

  Options options_;
  TempDir dir_{"lab-sshd"};
  std::string mount_ns_;
  int port_;
  std::optional<ChildProcess> server_;
};

}  // namespace lab::tests
