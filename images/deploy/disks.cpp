#include "images/deploy/disks.hpp"

#include "images/deploy/error.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <fstream>

namespace lab::images::deploy {
namespace {

namespace fs = std::filesystem;

std::string first_line(const fs::path& p) {
  std::ifstream in(p);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == ' ' || line.back() == '\r'))
    line.pop_back();
  return line;
}

bool not_a_target(std::string_view name) {
  constexpr std::array<std::string_view, 10> kSkipped = {"loop", "ram", "zram",     "sr",  "fd",
                                                         "md",   "dm-", "mtdblock", "nbd", "zd"};
  return std::any_of(kSkipped.begin(), kSkipped.end(),
                     [&](std::string_view p) { return name.starts_with(p); });
}

Disk read_disk(const fs::path& sys, const fs::path& dev) {
  Disk d;
  d.name = sys.filename().string();
  d.path = dev / d.name;
  const auto sectors = first_line(sys / "size");  // always in 512-byte units
  d.size = sectors.empty() ? 0 : std::stoull(sectors) * 512;
  d.removable = first_line(sys / "removable") == "1";
  d.read_only = first_line(sys / "ro") == "1";
  for (const char* f : {"serial", "device/serial", "device/wwid"}) {
    if (auto s = first_line(sys / f); !s.empty()) {
      d.serial = s;
      break;
    }
  }
  return d;
}

std::string listing(const std::vector<Disk>& disks) {
  if (disks.empty())
    return "no disk at all";
  std::string out = "disks:";
  for (const auto& d : disks) {
    out += fmt::format(" {} {}{}{}{}", d.path.string(), size_text(d.size),
                       d.serial.empty() ? "" : " serial=" + d.serial,
                       d.removable ? " removable" : "", d.read_only ? " read-only" : "");
  }
  return out;
}

}  // namespace

std::string size_text(std::uint64_t bytes) {
  constexpr std::array<const char*, 5> kUnits = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  std::size_t u = 0;
  while (v >= 1024 && u + 1 < kUnits.size()) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", v, kUnits.at(u));
}

std::vector<Disk> list_disks(const fs::path& sys_block, const fs::path& dev) {
  std::vector<Disk> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(sys_block, ec)) {
    const auto name = entry.path().filename().string();
    if (not_a_target(name))
      continue;
    Disk d = read_disk(entry.path(), dev);
    if (d.size > 0)
      out.push_back(std::move(d));
  }
  std::sort(out.begin(), out.end(), [](const Disk& a, const Disk& b) { return a.name < b.name; });
  return out;
}

Result<Disk> choose_disk(std::string_view selector, const fs::path& sys_block,
                         const fs::path& dev) {
  const auto disks = list_disks(sys_block, dev);
  if (selector.empty()) {
    const Disk* best = nullptr;
    for (const auto& d : disks) {
      if (!d.removable && !d.read_only && (best == nullptr || d.size > best->size))
        best = &d;
    }
    if (best == nullptr) {
      return Error(DeployError::no_disk,
                   "no fixed, writable disk to deploy onto (" + listing(disks) + ")");
    }
    return *best;
  }
  if (selector.starts_with("serial=")) {
    const auto serial = selector.substr(7);
    for (const auto& d : disks) {
      if (d.serial == serial)
        return d;
    }
    return Error(DeployError::no_disk,
                 "no disk with serial " + std::string(serial) + " (" + listing(disks) + ")");
  }
  const fs::path path(selector);
  if (path.parent_path() == dev && !path.filename().empty()) {
    const auto sys = sys_block / path.filename();
    std::error_code ec;
    if (fs::exists(sys / "size", ec)) {
      Disk d = read_disk(sys, dev);
      if (d.read_only)
        return Error(DeployError::no_disk, d.path.string() + " is read-only");
      if (d.size == 0)
        return Error(DeployError::no_disk, d.path.string() + " has no medium (size 0)");
      return d;
    }
  }
  return Error(DeployError::no_disk, "no disk " + std::string(selector) + " (" + listing(disks) +
                                         "); a disk is /dev/NAME or serial=SERIAL");
}

}  // namespace lab::images::deploy
