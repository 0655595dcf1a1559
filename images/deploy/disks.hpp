#pragma once
// Which disk a deploy writes: read from sysfs, chosen by path, by serial, or the largest fixed
// disk when the operator named none.

#include "shared/errors/error.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace lab::images::deploy {

struct Disk {
  std::string name;            // "vda"
  std::filesystem::path path;  // "/dev/vda"
  std::uint64_t size = 0;      // bytes
  bool removable = false;
  bool read_only = false;
  std::string serial;  // empty when the device has none
};

/// The whole disks under `sys_block` (/sys/block), devices in `dev`. Loop, RAM, optical,
/// device-mapper and RAID devices and empty drives are not disks to deploy onto.
std::vector<Disk> list_disks(const std::filesystem::path& sys_block = "/sys/block",
                             const std::filesystem::path& dev = "/dev");

/// `selector`: "" (the largest disk that is neither removable nor read-only), a device path
/// ("/dev/sdb": any block device under sys_block, loop devices too) or "serial=<serial>".
/// DeployError::no_disk naming the selector and the disks there are.
Result<Disk> choose_disk(std::string_view selector,
                         const std::filesystem::path& sys_block = "/sys/block",
                         const std::filesystem::path& dev = "/dev");

/// "8.0 GiB": sizes as the timeline shows them.
std::string size_text(std::uint64_t bytes);

}  // namespace lab::images::deploy
