#pragma once
// One real swtpm per test: state in its own directory, unix sockets, foreground child.

#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace lab::tests {

class Swtpm {
 public:
  Swtpm() : dir_("lab-swtpm") { start(); }
  Swtpm(const Swtpm&) = delete;
  Swtpm& operator=(const Swtpm&) = delete;
  ~Swtpm() { stop(); }

  /// The TCTI string the keystore takes.
  [[nodiscard]] std::string tcti() const { return "swtpm:path=" + socket(); }
  [[nodiscard]] std::string socket() const { return (dir_ / "tpm.sock").string(); }

  void stop() {
    if (process_) {
      process_->stop(2000ms);
      process_.reset();
    }
  }
  /// Restarts on the same state (a reboot: PCRs reset, keys remain).
  void restart() {
    stop();
    start();
  }

  /// Extends a PCR of the SHA-256 bank with tpm2_pcrextend.
  [[nodiscard]] bool extend_pcr(int pcr) const {
    const auto r = run(
        {"tpm2_pcrextend", std::to_string(pcr) +
                               ":sha256=0000000000000000000000000000000000000000000000000000000000"
                               "000001"},
        30s, {{"TPM2TOOLS_TCTI", tcti()}, {"TSS2_LOG", "all+none"}});
    return r.exit_code == 0;
  }

 private:
  void start() {
    const std::string d = dir_.path().string();
    ChildProcess::Options o;
    o.argv = {"swtpm",
              "socket",
              "--tpm2",
              "--tpmstate",
              "dir=" + d,
              "--server",
              "type=unixio,path=" + socket(),
              "--ctrl",
              "type=unixio,path=" + socket() + ".ctrl",
              "--flags",
              "not-need-init,startup-clear"};
    process_ = std::make_unique<ChildProcess>(ChildProcess::start(std::move(o)));
    const bool ready = wait_until(
        [&] {
          return run({"swtpm_ioctl", "--unix", socket() + ".ctrl", "-g"}, 5s).exit_code == 0;
        },
        10s);
    if (!ready)
      throw std::runtime_error("swtpm did not start: " + process_->output());
  }

  TempDir dir_;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace lab::tests
