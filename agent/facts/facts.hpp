#pragma once
// Hardware facts a node reports when it joins, read from /proc and /sys. Every function takes
// the root of the file system so tests can feed a fake tree; a missing or unreadable source
// leaves its fact empty rather than failing the join.

#include <boost/json/object.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lab::agent::facts {

struct Cpu {
  std::string model;
  std::uint32_t count = 0;
};
struct Disk {
  std::string name;
  std::uint64_t size_bytes = 0;
};
struct Nic {
  std::string name;
  std::string mac;
};
struct Dmi {
  std::string vendor;
  std::string product;
  std::string serial;
};

struct Facts {
  Cpu cpu;
  std::uint64_t memory_bytes = 0;
  std::vector<Disk> disks;
  std::vector<Nic> nics;
  Dmi dmi;
  std::string arch;
};

/// <root>/proc/cpuinfo: "model name" (or "Processor"/"cpu model" on other architectures) and
/// the number of "processor" entries.
Cpu read_cpu(const std::filesystem::path& root);
/// <root>/proc/meminfo MemTotal in bytes; 0 when absent.
std::uint64_t read_memory(const std::filesystem::path& root);
/// <root>/sys/block/*: whole disks (no loop, ram, zram, dm- devices) with size = 512 × sectors.
std::vector<Disk> read_disks(const std::filesystem::path& root);
/// <root>/sys/class/net/*: every interface but lo, with its MAC; sorted by name.
std::vector<Nic> read_nics(const std::filesystem::path& root);
/// <root>/sys/class/dmi/id/{sys_vendor,product_name,product_serial}, where readable.
Dmi read_dmi(const std::filesystem::path& root);

/// All of the above, with `arch` from uname (the machine field).
Facts collect(const std::filesystem::path& root = "/");

/// {"cpu":{"model","count"},"memory_bytes","disks":[{"name","size_bytes"}],
///  "nics":[{"name","mac"}],"dmi":{"vendor","product","serial"},"arch"}.
boost::json::object to_json(const Facts& facts);

}  // namespace lab::agent::facts
