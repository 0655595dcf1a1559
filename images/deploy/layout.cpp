#include "images/deploy/layout.hpp"

#include "images/deploy/error.hpp"
#include "shared/crypto/encoding.hpp"
#include "shared/crypto/random.hpp"
#include "shared/process/process.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <thread>
#include <vector>

namespace lab::images::deploy {
namespace {

namespace fs = std::filesystem;
using Args = std::vector<std::string>;

Result<void> zero_range(int fd, std::uint64_t offset, std::uint64_t length) {
  const std::string zeros(kMiB, '\0');
  while (length > 0) {
    const auto n = std::min<std::uint64_t>(length, zeros.size());
    const auto w = ::pwrite(fd, zeros.data(), n, static_cast<off_t>(offset));
    if (w <= 0)
      return Error(DeployError::partition_failed, "zeroing: " + errno_text(errno));
    offset += static_cast<std::uint64_t>(w);
    length -= static_cast<std::uint64_t>(w);
  }
  return {};
}

// Old signatures and boot code gone before anything else: from here until the bootloader step
// the disk boots nothing, whatever happens in between.
Result<void> make_unbootable(const Disk& disk) {
  const int fd = ::open(disk.path.c_str(), O_WRONLY | O_CLOEXEC | O_EXCL);
  if (fd < 0) {
    return Error(DeployError::partition_failed,
                 "open " + disk.path.string() + ": " + errno_text(errno) +
                     (errno == EBUSY ? " (a partition of it is mounted or in use)" : ""));
  }
  const auto size = disk.size;
  auto r = zero_range(fd, 0, std::min(size, kMiB));
  if (r && size > kMiB)
    r = zero_range(fd, size - kMiB, kMiB);
  if (r && ::fsync(fd) != 0)
    r = Error(DeployError::partition_failed,
              "fsync " + disk.path.string() + ": " + errno_text(errno));
  ::close(fd);
  return r;
}

Result<std::string> random_uuid() {
  LAB_TRY_ASSIGN(auto b, shared::crypto::random_bytes(16));
  b[6] = static_cast<std::uint8_t>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<std::uint8_t>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  const auto hex = shared::crypto::hex_encode(b);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

}  // namespace

std::uint64_t required_size(std::uint64_t installed_size) {
  return 2 * kMiB + kEspSize + installed_size + installed_size / 4 + 256 * kMiB;
}

std::string sfdisk_script() {
  // Partition type GUIDs: BIOS boot, EFI system, Linux file system.
  return "label: gpt\n"
         "first-lba: 2048\n"
         "start=2048, size=2048, type=21686148-6E49-704E-6F74-4E6565644546, name=\"bios\"\n"
         "size=" +
         std::to_string(kEspSize / kMiB) +
         "MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"esp\"\n"
         "type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"root\"\n";
}

fs::path partition_path(const fs::path& disk, int number) {
  const auto name = disk.string();
  const bool digit_last = !name.empty() && name.back() >= '0' && name.back() <= '9';
  return name + (digit_last ? "p" : "") + std::to_string(number);
}

Result<Layout> partition(const Disk& disk, std::chrono::milliseconds wait) {
  LAB_TRY(make_unbootable(disk));
  shared::process::RunOptions o;
  o.input = sfdisk_script();
  o.timeout = std::chrono::minutes(2);
  auto r = shared::process::check_output(Args{"sfdisk", "--quiet", "--wipe", "always",
                                              "--wipe-partitions", "always", disk.path.string()},
                                         o);
  if (!r)
    return Error(DeployError::partition_failed, r.error().detail());
  Layout layout;
  layout.disk = disk.path;
  layout.esp = partition_path(disk.path, 2);
  layout.root = partition_path(disk.path, 3);
  // sfdisk has asked the kernel to re-read the table; devtmpfs (or udev) makes the nodes.
  const auto deadline = std::chrono::steady_clock::now() + wait;
  std::error_code ec;
  while (!fs::exists(layout.root, ec) || !fs::exists(layout.esp, ec)) {
    if (std::chrono::steady_clock::now() > deadline) {
      return Error(
          DeployError::partition_failed,
          layout.root.string() + " did not appear after partitioning " + disk.path.string());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return layout;
}

Result<void> format(Layout& layout) {
  LAB_TRY_ASSIGN(auto id_bytes, shared::crypto::random_bytes(4));
  const auto id = shared::crypto::hex_encode(id_bytes);
  std::string volume_id = id;
  std::transform(volume_id.begin(), volume_id.end(), volume_id.begin(),
                 [](char c) { return static_cast<char>(std::toupper(c)); });
  layout.esp_uuid = volume_id.substr(0, 4) + "-" + volume_id.substr(4);
  LAB_TRY_ASSIGN(layout.root_uuid, random_uuid());
  shared::process::RunOptions o;
  o.timeout = std::chrono::minutes(5);
  if (auto r = shared::process::check_output(
          Args{"mkfs.fat", "-F", "32", "-n", "EFI", "-i", id, layout.esp.string()}, o);
      !r) {
    return Error(DeployError::format_failed, r.error().detail());
  }
  if (auto r = shared::process::check_output(Args{"mke2fs", "-q", "-F", "-t", "ext4", "-L", "root",
                                                  "-U", layout.root_uuid, layout.root.string()},
                                             o);
      !r) {
    return Error(DeployError::format_failed, r.error().detail());
  }
  return {};
}

Result<void> mount(const Layout& layout, const fs::path& target) {
  std::error_code ec;
  fs::create_directories(target, ec);
  if (ec)
    return Error(DeployError::mount_failed, "mkdir " + target.string() + ": " + ec.message());
  if (::mount(layout.root.c_str(), target.c_str(), "ext4", 0, nullptr) != 0) {
    return Error(DeployError::mount_failed, "mount " + layout.root.string() + " on " +
                                                target.string() + ": " + errno_text(errno));
  }
  const auto esp = target / "boot/efi";
  fs::create_directories(esp, ec);
  if (ec)
    return Error(DeployError::mount_failed, "mkdir " + esp.string() + ": " + ec.message());
  if (::mount(layout.esp.c_str(), esp.c_str(), "vfat", 0, "umask=0077") != 0) {
    return Error(DeployError::mount_failed,
                 "mount " + layout.esp.string() + " on " + esp.string() + ": " + errno_text(errno));
  }
  return {};
}

Result<void> unmount_all(const fs::path& target) {
  // Mount points under target from mountinfo, deepest (longest) first.
  std::vector<std::string> points;
  {
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    const auto prefix = target.string();
    while (std::getline(in, line)) {
      std::size_t start = 0;
      for (int i = 0; i < 4 && start != std::string::npos; ++i)
        start = line.find(' ', start + 1);
      if (start == std::string::npos)
        continue;
      const auto end = line.find(' ', start + 1);
      auto point = line.substr(start + 1, end - start - 1);
      if (point == prefix || point.starts_with(prefix + "/"))
        points.push_back(std::move(point));
    }
  }
  std::sort(points.begin(), points.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  ::sync();
  std::string stuck;
  for (const auto& p : points) {
    if (::umount2(p.c_str(), 0) != 0 && ::umount2(p.c_str(), MNT_DETACH) != 0)
      stuck += " " + p + " (" + errno_text(errno) + ")";
  }
  if (!stuck.empty())
    return Error(DeployError::mount_failed, "still mounted:" + stuck);
  return {};
}

std::string fstab(const Layout& layout) {
  return fmt::format(
      "# Written by the lab deploy: the root and EFI system partitions by UUID.\n"
      "UUID={} / ext4 errors=remount-ro 0 1\n"
      "UUID={} /boot/efi vfat umask=0077 0 1\n",
      layout.root_uuid, layout.esp_uuid);
}

}  // namespace lab::images::deploy
