#pragma once
// A real OpenSSH server for tests: its own host key, client key, config and port on loopback,
// run as a foreground child. Optionally inside a private mount and UTS namespace with its own
// hostname and its own /usr/local, /etc/lab, /var/lib/labd and /run/lab, so that several
// "hosts" on one machine do not share what an installer writes.
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
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  // NOLINTEND(cppcoreguidelines-pro-type-reinterpret-cast)
  ::close(fd);
  return ntohs(addr.sin_port);
}

class SshServer {
 public:
  struct Options {
    std::string hostname;  // non-empty: private mount + UTS namespace with this hostname
    std::string listen = "127.0.0.1";
  };

  SshServer() : SshServer(Options{}) {}
  explicit SshServer(Options options) : options_(std::move(options)), port_(free_tcp_port()) {
    std::filesystem::create_directories("/run/sshd");
    keygen(dir_ / "host_key");
    keygen(dir_ / "client_key");
    std::filesystem::copy_file(dir_ / "client_key.pub", dir_ / "authorized_keys");
    dir_.write("sshd_config",
               "Port " + std::to_string(port_) + "\nListenAddress " + options_.listen +
                   "\nHostKey " + (dir_ / "host_key").string() +
                   "\nPidFile none\nAuthorizedKeysFile " + (dir_ / "authorized_keys").string() +
                   "\nStrictModes no\nUsePAM no\nPermitRootLogin yes\n"
                   "PasswordAuthentication yes\nKbdInteractiveAuthentication no\n"
                   "Subsystem sftp internal-sftp\nLogLevel ERROR\nMaxStartups 100\n");
    start();
  }
  SshServer(const SshServer&) = delete;
  SshServer& operator=(const SshServer&) = delete;
  ~SshServer() { stop(); }

  /// Starts (again) on the same port; waits until it accepts connections.
  void start() {
    std::string cmd = "exec /usr/sbin/sshd -D -e -f " + (dir_ / "sshd_config").string();
    if (!options_.hostname.empty()) {
      const auto root = dir_ / "root";
      std::string mounts;
      for (const char* d : {"usr/local", "etc/lab", "var/lib/labd", "run/lab"}) {
        std::filesystem::create_directories(root / d);
        std::filesystem::create_directories(std::filesystem::path("/") / d);
        mounts += "mount --bind " + (root / d).string() + " /" + d + " && ";
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
  /// The directory that stands in for this host's /usr/local, /etc/lab, …
  [[nodiscard]] std::filesystem::path root() const { return dir_ / "root"; }
  [[nodiscard]] std::string output() const { return server_ ? server_->output() : ""; }

 private:
  static void keygen(const std::filesystem::path& path) {
    const auto r = run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path.string()});
    if (r.exit_code != 0) {
      throw std::runtime_error("ssh-keygen failed: " + r.output);
    }
  }

  Options options_;
  TempDir dir_{"lab-sshd"};
  int port_;
  std::optional<ChildProcess> server_;
};

}  // namespace lab::tests
