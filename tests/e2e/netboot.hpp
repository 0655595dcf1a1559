#pragma once
// A network-boot lab for QEMU: a namespace with a bridge and a tap device, `lab serve` on the
// bridge (DHCP, TFTP, HTTP boot, coordinator), the agent OS under its HTTP root, and VMs that
// PXE-boot from it with SeaBIOS + iPXE ROM or OVMF's own PXE client.

#include "tests/support/netns.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace lab::tests::e2e {

enum class Firmware { bios, uefi };

std::string_view firmware_name(Firmware f) noexcept;

/// Why this machine cannot run the network-boot test (empty when it can): root, qemu, OVMF,
/// iPXE, the kernel package, busybox and zstd.
std::string missing_prerequisite(Firmware firmware);

/// The labd that goes into the agent OS: $LAB_E2E_LABD, else the LAB_E2E_LABD CMake
/// variable's, else this build's.
std::filesystem::path labd_under_test();

/// The agent OS (vmlinuz, initrd.img) for the labd under test, built with `lab image agent-os`
/// once and cached in the build tree until lab, labd or the kernel package change. The labd is
/// the LAB_E2E_LABD environment variable's, else the LAB_E2E_LABD CMake variable's, else this
/// build's; it is stripped before it goes in. Throws std::runtime_error when the build fails.
std::filesystem::path agent_os_dir();

/// "tcg", or "kvm" when a short direct-kernel probe boot under KVM reached the agent OS's /init
/// (cached per machine boot in the build tree). LAB_E2E_ACCEL=tcg|kvm overrides the probe.
std::string accelerator();

/// Memory of the test VMs, MiB: what a small machine has.
inline constexpr int kVmMemoryMib = 512;

/// True when this labd has the `boot` command the agent OS runs.
bool labd_has_boot_command();

struct LabOptions {
  /// Names the copies of the console, QEMU, lab serve and dnsmasq logs kept in
  /// <build>/tests/e2e/logs/ after the test, for a person to read.
  std::string name = "netboot";
  /// "full": lab serve hands out addresses. "proxy": dnsmasq in a second namespace on the same
  /// bridge hands them out and lab serve answers PXE clients only.
  std::string dhcp_mode = "full";
  /// coordinator.auto_accept: empty leaves discovered machines for `lab node accept`.
  std::string auto_accept;
};

/// The namespace, the bridge (10.98.N.1/24, N unique per process and object), one tap for the
/// VM, router advertisements on the bridge (iPXE then stops waiting for IPv6 at once), and
/// `lab serve`. Everything is stopped and removed on destruction.
class BootLab {
 public:
  explicit BootLab(LabOptions options = {});
  BootLab(const BootLab&) = delete;
  BootLab& operator=(const BootLab&) = delete;
  ~BootLab();

  [[nodiscard]] const NetNs& ns() const noexcept { return ns_; }
  [[nodiscard]] const std::string& tap() const noexcept { return tap_; }
  [[nodiscard]] const std::string& server_ip() const noexcept { return server_ip_; }
  /// 10.98.N.<host>.
  [[nodiscard]] std::string address(int host) const;
  [[nodiscard]] std::string http_url(std::string_view path) const;
  [[nodiscard]] std::filesystem::path data_dir() const { return dir_ / "data"; }
  [[nodiscard]] const TempDir& dir() const noexcept { return dir_; }
  [[nodiscard]] std::string serve_output() const;
  [[nodiscard]] std::string dnsmasq_output() const;
  /// Where the logs of this lab's run are kept: <build>/tests/e2e/logs/<name>.
  [[nodiscard]] std::filesystem::path log_prefix() const;

  /// `lab ARGS…` inside the namespace, against this appliance.
  [[nodiscard]] CommandResult lab(const std::vector<std::string>& args) const;
  /// A shell command inside the namespace.
  [[nodiscard]] CommandResult sh_in(const std::string& script) const;

 private:
  TempDir dir_{"lab-e2e"};
  std::string name_;
  NetNs ns_{"e2e"};
  std::optional<NetNs> dhcp_ns_;
  int subnet_ = 0;
  std::string bridge_ = "br0";
  std::string tap_ = "tap0";
  std::string server_ip_;
  std::optional<ChildProcess> ra_;
  std::optional<ChildProcess> dnsmasq_;
  std::optional<ChildProcess> serve_;
};

/// One QEMU VM network-booting from a BootLab; killed on destruction. Boot progress is read
/// from the serial console (a file): QEMU's exit code says nothing about the guest.
class Vm {
 public:
  Vm(const BootLab& lab, Firmware firmware, std::string mac, const std::string& accel);
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;
  ~Vm();

  /// Seconds from QEMU's start until `marker` first appeared on the console; nullopt when it
  /// did not within `timeout`, or when the boot failed or QEMU exited first.
  std::optional<double> wait_for(std::string_view marker, std::chrono::seconds timeout);
  /// When `marker` was first seen by any wait so far (seconds from start).
  [[nodiscard]] std::optional<double> seen(std::string_view marker) const;
  [[nodiscard]] std::string console() const;
  /// The last lines of the console and of QEMU's own output, for failure messages.
  [[nodiscard]] std::string tail(std::size_t lines = 40) const;
  [[nodiscard]] const std::string& mac() const noexcept { return mac_; }

 private:
  void scan();

  std::string mac_;
  std::filesystem::path log_prefix_;
  TempDir dir_{"lab-vm"};
  std::filesystem::path serial_;
  std::chrono::steady_clock::time_point started_;
  std::optional<ChildProcess> qemu_;
  std::map<std::string, double, std::less<>> seen_;
};

/// Console markers of the agent OS (images/agentos/init_script.cpp) and of `labd boot`.
inline constexpr std::string_view kInitStarted = "lab-agent-os: starting";
inline constexpr std::string_view kNetworkUp = "lab-agent-os: network up";
inline constexpr std::string_view kJoining = "labd boot: joining";
inline constexpr std::string_view kJoined = "labd boot: joined";
inline constexpr std::string_view kReady = "labd boot: ready";
/// Markers after which the boot goes no further.
inline constexpr std::string_view kFailureMarkers[] = {"labd boot: failed", "lab-agent-os: stopped",
                                                       "Kernel panic", "No bootable device",
                                                       "No more network devices"};

}  // namespace lab::tests::e2e
