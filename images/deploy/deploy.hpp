#pragma once
// A whole deploy, step by step: the signed manifest, the disk, its layout, the image streamed
// and verified, the node's identity carried over, the bootloader last. Until that last step
// the disk boots nothing: a deploy that fails or is cut off leaves the machine booting the
// agent OS from the network again.

#include "images/deploy/stream.hpp"
#include "shared/crypto/keys.hpp"
#include "shared/errors/error.hpp"

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace lab::images::deploy {

struct Plan {
  /// Where the image's files are: "<server>/boot/images/<name>/" (manifest.sig, the archive).
  std::string image_url;
  std::string image;  // its name, for messages
  /// The key the image's manifest must be signed with: the appliance's, as the node trusts it.
  std::optional<shared::crypto::Ed25519PublicKey> appliance;
  std::string disk;  // choose_disk's selector
  std::filesystem::path sys_block = "/sys/block";
  std::filesystem::path dev = "/dev";
  std::filesystem::path target = "/run/lab-deploy/root";
  /// Directories copied into the deployed tree (host path, path in the tree), modes and owners
  /// kept: the node's data directory.
  std::vector<std::pair<std::filesystem::path, std::filesystem::path>> carry;
  /// Files written into the tree (path in the tree, content, mode).
  struct File {
    std::filesystem::path path;
    std::string content;
    unsigned mode = 0644;
  };
  std::vector<File> files;
  /// The kernel command line of the installed system (GRUB_CMDLINE_LINUX).
  std::string kernel_cmdline = "console=tty0 console=ttyS0,115200n8";
  StreamOptions stream;
};

/// One line of the timeline: a step started, progressed, finished or failed.
struct Step {
  std::string name;   // image, disk, partition, format, stream, verify, identity, bootloader, done
  std::string state;  // started, progress, done, failed
  std::string detail;
};
using Reporter = std::function<void(const Step&)>;

struct Deployed {
  std::string disk;
  std::string kernel_version;
  StreamResult stream;
};

/// Runs the plan, reporting each step; the first failure is reported (state "failed") and
/// returned. Whatever was mounted is unmounted before returning.
Result<Deployed> run(const Plan& plan, const Reporter& report);

/// Installs GRUB for BIOS (on `disk`) and UEFI (the removable path on the ESP, no NVRAM entry)
/// from the deployed tree at `target`, with `cmdline`, and writes its configuration.
Result<void> install_bootloader(const std::filesystem::path& target,
                                const std::filesystem::path& disk, const std::string& cmdline);

}  // namespace lab::images::deploy
