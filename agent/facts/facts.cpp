#include "agent/facts/facts.hpp"

#include <sys/utsname.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <system_error>

namespace lab::agent::facts {
namespace {

namespace fs = std::filesystem;

// /proc and /sys files are small; anything past this is not what we expect to read.
constexpr std::size_t kMaxRead = std::size_t{1} << 20;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in)
    return {};
  std::string out(kMaxRead, '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  out.resize(static_cast<std::size_t>(in.gcount()));
  return out;
}

std::string trim(std::string_view s) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && is_space(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_space(s.back()))
    s.remove_suffix(1);
  return std::string(s);
}

std::string read_value(const fs::path& p) {
  return trim(slurp(p));
}

std::uint64_t to_u64(std::string_view s) {
  std::uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() ? v : 0;
}

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    out.push_back(it->path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

Cpu read_cpu(const fs::path& root) {
  Cpu cpu;
  std::istringstream in(slurp(root / "proc/cpuinfo"));
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos)
      continue;
    const std::string key = trim(std::string_view(line).substr(0, colon));
    const std::string value = trim(std::string_view(line).substr(colon + 1));
    if (key == "processor" && !value.empty() &&
        value.find_first_not_of("0123456789") == std::string::npos) {
      ++cpu.count;
    } else if (cpu.model.empty() &&
               (key == "model name" || key == "cpu model" || key == "Processor")) {
      cpu.model = value;
    }
  }
  return cpu;
}

std::uint64_t read_memory(const fs::path& root) {
  std::istringstream in(slurp(root / "proc/meminfo"));
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("MemTotal:"))
      continue;
    std::istringstream fields(line.substr(9));
    std::uint64_t kib = 0;
    std::string unit;
    fields >> kib >> unit;
    return unit == "kB" || unit.empty() ? kib * 1024 : kib;
  }
  return 0;
}

std::vector<Disk> read_disks(const fs::path& root) {
  std::vector<Disk> out;
  for (const auto& name : entries(root / "sys/block")) {
    if (name.starts_with("loop") || name.starts_with("ram") || name.starts_with("zram") ||
        name.starts_with("dm-") || name.starts_with("sr") || name.starts_with("md"))
      continue;
    const std::uint64_t sectors = to_u64(read_value(root / "sys/block" / name / "size"));
    out.push_back({name, sectors * 512});
  }
  return out;
}

std::vector<Nic> read_nics(const fs::path& root) {
  std::vector<Nic> out;
  for (const auto& name : entries(root / "sys/class/net")) {
    if (name == "lo")
      continue;
    out.push_back({name, read_value(root / "sys/class/net" / name / "address")});
  }
  return out;
}

Dmi read_dmi(const fs::path& root) {
  const fs::path dir = root / "sys/class/dmi/id";
  return {read_value(dir / "sys_vendor"), read_value(dir / "product_name"),
          read_value(dir / "product_serial")};
}

Facts collect(const fs::path& root) {
  Facts f;
  f.cpu = read_cpu(root);
  f.memory_bytes = read_memory(root);
  f.disks = read_disks(root);
  f.nics = read_nics(root);
  f.dmi = read_dmi(root);
  struct utsname u {};
  if (::uname(&u) == 0)
    f.arch = u.machine;
  return f;
}

boost::json::object to_json(const Facts& f) {
  boost::json::object o;
  o["cpu"] = boost::json::object{{"model", f.cpu.model}, {"count", f.cpu.count}};
  o["memory_bytes"] = f.memory_bytes;
  boost::json::array disks;
  for (const auto& d : f.disks)
    disks.push_back(boost::json::object{{"name", d.name}, {"size_bytes", d.size_bytes}});
  o["disks"] = std::move(disks);
  boost::json::array nics;
  for (const auto& n : f.nics)
    nics.push_back(boost::json::object{{"name", n.name}, {"mac", n.mac}});
  o["nics"] = std::move(nics);
  o["dmi"] = boost::json::object{
      {"vendor", f.dmi.vendor}, {"product", f.dmi.product}, {"serial", f.dmi.serial}};
  o["arch"] = f.arch;
  return o;
}

}  // namespace lab::agent::facts
