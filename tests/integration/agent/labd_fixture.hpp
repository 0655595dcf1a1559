#pragma once
// A whole labd in a temporary directory: its own swtpm, its own labd.toml (data dir, socket and
// rendered files inside the directory), and helpers to run its commands.

#include "agent/daemon/node.hpp"
#include "agent/daemon/settings.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/unit/agent/swtpm.hpp"

#include <fmt/format.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace lab::tests {

class LabdNode {
 public:
  explicit LabdNode(std::string extra_toml = {}, bool with_tpm = true) : dir_("labd-node") {
    if (with_tpm)
      tpm_ = std::make_unique<Swtpm>();
    write_config(std::move(extra_toml));
  }

  /// Rewrites labd.toml (another swtpm, other PCRs, file mode).
  void write_config(std::string extra_toml) {
    extra_ = std::move(extra_toml);
    const std::string tcti = tpm_ ? tpm_->tcti() : "swtpm:path=" + (dir_ / "no-tpm.sock").string();
    dir_.write("labd.toml", fmt::format("data_dir = \"{0}/data\"\n"
                                        "socket = \"{0}/run/labd.sock\"\n"
                                        "tcti = \"{1}\"\n"
                                        "log_level = \"debug\"\n"
                                        "{2}\n"
                                        "[render]\n"
                                        "labels_json = \"{0}/run/labels.json\"\n"
                                        "env_file = \"{0}/run/labels.env\"\n"
                                        "secrets_dir = \"{0}/run/secrets\"\n"
                                        "facts_file = \"{0}/facts/lab.json\"\n"
                                        "[sync]\n"
                                        "wait = \"2s\"\n"
                                        "backoff_initial = \"1s\"\n"
                                        "backoff_cap = \"2s\"\n",
                                        dir_.path().string(), tcti, extra_));
  }

  [[nodiscard]] std::filesystem::path config() const { return dir_ / "labd.toml"; }
  [[nodiscard]] std::filesystem::path data_dir() const { return dir_ / "data"; }
  [[nodiscard]] std::filesystem::path run_dir() const { return dir_ / "run"; }
  [[nodiscard]] const TempDir& dir() const { return dir_; }
  [[nodiscard]] Swtpm* tpm() const { return tpm_.get(); }
  void replace_tpm(std::unique_ptr<Swtpm> tpm) {
    tpm_ = std::move(tpm);
    write_config(extra_);
  }

  /// `labd --config … args…`, to completion.
  [[nodiscard]] CommandResult labd(std::vector<std::string> args,
                                   std::chrono::milliseconds timeout = 60s) const {
    std::vector<std::string> argv{labd_binary().string(), "--config", config().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, timeout, {{"TSS2_LOG", "all+none"}});
  }

  /// `labd run` as a child of the test.
  [[nodiscard]] ChildProcess start() const {
    ChildProcess::Options o;
    o.argv = {labd_binary().string(), "--config", config().string(), "run"};
    o.env = {{"TSS2_LOG", "all+none"}};
    return ChildProcess::start(std::move(o));
  }

  /// Waits until the agent's local API accepts connections (a stale socket file does not).
  [[nodiscard]] bool wait_ready(std::chrono::milliseconds timeout = 20s) const {
    const auto path = (run_dir() / "labd.sock").string();
    return wait_until(
        [&] {
          const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
          sockaddr_un a{};
          a.sun_family = AF_UNIX;
          (void)std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
          const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
          ::close(fd);
          return ok;
        },
        timeout);
  }

  /// Settings as labd loads them (to open the cache from the test).
  [[nodiscard]] agent::daemon::Settings settings() const {
    agent::daemon::SettingSources src;
    src.config_file = config();
    return agent::daemon::load_settings(src).value();
  }

 private:
  TempDir dir_;
  std::unique_ptr<Swtpm> tpm_;
  std::string extra_;
};

}  // namespace lab::tests
