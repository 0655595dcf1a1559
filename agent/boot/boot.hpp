#pragma once
// `labd boot`: the agent side of a network boot. Runs in the agent OS's initramfs after DHCP:
// reads the lab.* parameters of the kernel command line, joins with the one-time boot token,
// waits for the operator when the machine is new (discovery), reports ready, and then serves
// like `labd run`. Every step is one stable line on the console (the serial console is what an
// operator and the end-to-end test watch) and reaches the appliance's flight recorder.

#include "agent/daemon/settings.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>

namespace lab::agent::boot {

/// The console lines, each "labd boot: " + one of these + the rest of the line.
inline constexpr const char* kConsolePrefix = "labd boot: ";

struct BootOptions {
  std::filesystem::path cmdline = "/proc/cmdline";
  std::FILE* console = stdout;
  std::filesystem::path facts_root = "/";
  std::chrono::milliseconds join_timeout{30000};
  /// After "ready": serve like `labd run` (the agent OS stays up). Off: return 0 there.
  bool serve = true;
};

/// Blocking; returns the process exit code (0, or 1 after "labd boot: failed: <reason>").
/// Without a TPM device (the usual case in an initramfs) the data key is kept in a file in the
/// data directory, and the console says so (degraded).
int boot(daemon::Settings settings, const BootOptions& options);

}  // namespace lab::agent::boot
