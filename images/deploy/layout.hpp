#pragma once
// The disk's layout: GPT with a BIOS boot partition (GRUB's core image on a GPT disk booted by
// a BIOS), an EFI system partition and the root file system, so one deployed disk boots under
// either firmware. Partitioned by sfdisk, formatted by mkfs.fat and mke2fs with UUIDs chosen
// here (fstab names them, no blkid needed), mounted by mount(2).

#include "images/deploy/disks.hpp"
#include "shared/errors/error.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

namespace lab::images::deploy {

inline constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
inline constexpr std::uint64_t kEspSize = 256 * kMiB;

/// Bytes a disk needs for an image whose tree takes `installed_size`: the partitions before
/// the root, the tree with a quarter more for ext4's metadata and journal, and 256 MiB to run.
std::uint64_t required_size(std::uint64_t installed_size);

/// The sfdisk script of the layout (partition 1 BIOS boot, 2 ESP, 3 root).
std::string sfdisk_script();

/// "/dev/vda" 3 → "/dev/vda3"; "/dev/nvme0n1" or "/dev/loop0" 3 → "/dev/nvme0n1p3".
std::filesystem::path partition_path(const std::filesystem::path& disk, int number);

struct Layout {
  std::filesystem::path disk;
  std::filesystem::path esp;   // partition 2
  std::filesystem::path root;  // partition 3
  std::string esp_uuid;        // "1A2B-3C4D", as fstab writes a FAT volume id
  std::string root_uuid;       // RFC 4122 text
};

/// Makes `disk` unbootable first (its first and last MiB zeroed: old partition tables and boot
/// code), then writes the layout and waits (up to `wait`) for the partitions' device nodes.
Result<Layout> partition(const Disk& disk,
                         std::chrono::milliseconds wait = std::chrono::seconds(10));

/// mkfs.fat on the ESP, mke2fs (ext4) on the root, with fresh UUIDs in `layout`.
Result<void> format(Layout& layout);

/// Mounts the root at `target` and the ESP at `target`/boot/efi.
Result<void> mount(const Layout& layout, const std::filesystem::path& target);

/// Unmounts everything mounted under `target` (deepest first) and `target` itself; flushes
/// the disk's writes first. Errors only when something stays mounted.
Result<void> unmount_all(const std::filesystem::path& target);

/// /etc/fstab of the deployed system.
std::string fstab(const Layout& layout);

}  // namespace lab::images::deploy
