#pragma once
// A real `lab serve` (coordinator only) on a loopback port that survives restarts, and the
// `lab` CLI pointed at it: the coordinator the agent's integration tests and demo talk to.

#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/unit/agent/swtpm.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace lab::tests {

class LabServe {
 public:
  /// `sets`: more `--set KEY=VALUE` of `lab serve` (coordinator.certificate_ttl=6s).
  explicit LabServe(std::vector<std::string> sets = {})
      : dir_("lab-serve"), port_(free_port()), sets_(std::move(sets)) {
    dir_.write("lab.toml", "");
    start();
  }

  void start() {
    ChildProcess::Options o;
    o.argv = {lab_binary().string(), "serve",    "--config", (dir_ / "lab.toml").string(),
              "--data-dir",          data_dir(), "--set",    "coordinator.listen=" + address()};
    for (const auto& set : sets_) {
      o.argv.emplace_back("--set");
      o.argv.push_back(set);
    }
    process_.reset();
    process_.emplace(ChildProcess::start(std::move(o)));
    const bool ready = wait_until(
        [&] {
          return process_->output().find("msg=ready") != std::string::npos || !process_->running();
        },
        60s);
    if (!ready || !process_->running())
      throw std::runtime_error("lab serve did not start:\n" + process_->output());
  }
  int stop() { return process_ ? process_->stop() : -1; }

  [[nodiscard]] std::string data_dir() const { return (dir_ / "data").string(); }
  [[nodiscard]] std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] std::string url() const { return "https://" + address(); }
  [[nodiscard]] std::string output() const { return process_ ? process_->output() : ""; }

  /// curl arguments that authenticate as the first-start operator against the API.
  [[nodiscard]] std::vector<std::string> operator_auth() const {
    std::string token;
    std::ifstream(std::filesystem::path(data_dir()) / "operator.token") >> token;
    return {"--cacert", (std::filesystem::path(data_dir()) / "ca.pem").string(), "-H",
            "Authorization: Bearer " + token};
  }

  /// `lab ARGS…` with the appliance's data dir and URL.
  [[nodiscard]] CommandResult lab(std::vector<std::string> args) const {
    std::vector<std::string> argv{lab_binary().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, 60s, {{"LAB_DATA_DIR", data_dir()}, {"LAB_SERVER", url()}});
  }
  /// stdout of `lab ARGS…` alone (stderr dropped), trailing newline removed.
  [[nodiscard]] std::string lab_out(const std::vector<std::string>& args) const {
    std::string script = "LAB_DATA_DIR='" + data_dir() + "' LAB_SERVER='" + url() + "' '" +
                         lab_binary().string() + "'";
    for (const auto& a : args)
      script += " '" + a + "'";
    auto r = sh(script + " 2>/dev/null");
    std::string out = r.output;
    while (!out.empty() && out.back() == '\n')
      out.pop_back();
    return out;
  }
  /// A join string from `lab token create`.
  [[nodiscard]] std::string token(const std::vector<std::string>& labels = {},
                                  const std::string& ttl = "1h") const {
    std::vector<std::string> args{"token", "create", "--ttl", ttl};
    for (const auto& l : labels) {
      args.emplace_back("--label");
      args.push_back(l);
    }
    return lab_out(args);
  }

 private:
  static std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&a), len) == 0 &&
                       ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
    ::close(fd);
    if (!bound)
      throw std::runtime_error("no free port on 127.0.0.1");
    return ntohs(a.sin_port);
  }

  TempDir dir_;
  std::uint16_t port_;
  std::vector<std::string> sets_;
  std::optional<ChildProcess> process_;
};

}  // namespace lab::tests
