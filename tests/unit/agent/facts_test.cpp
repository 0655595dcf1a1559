// Hardware facts from a fake /proc and /sys tree, and from this machine's real one.
#include "agent/facts/facts.hpp"

#include "tests/support/temp_dir.hpp"

#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include <filesystem>

namespace {

using namespace lab::agent::facts;
using lab::tests::TempDir;
namespace fs = std::filesystem;

void put(const TempDir& root, const std::string& rel, const std::string& content) {
  fs::create_directories((root.path() / rel).parent_path());
  root.write(rel, content);
}

TEST(Facts, ParsesAFakeTree) {
  TempDir root("lab-facts");
  put(root, "proc/cpuinfo",
      "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) E-2288G\n\n"
      "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) E-2288G\n\n");
  put(root, "proc/meminfo", "MemTotal:       16318412 kB\nMemFree:         1000 kB\n");
  put(root, "sys/block/sda/size", "1953525168\n");
  put(root, "sys/block/nvme0n1/size", "2000409264\n");
  put(root, "sys/block/loop0/size", "100\n");
  put(root, "sys/block/dm-0/size", "100\n");
  put(root, "sys/class/net/lo/address", "00:00:00:00:00:00\n");
  put(root, "sys/class/net/eth0/address", "52:54:00:12:34:56\n");
  put(root, "sys/class/net/eno1/address", "3c:ec:ef:00:00:01\n");
  put(root, "sys/class/dmi/id/sys_vendor", "Supermicro\n");
  put(root, "sys/class/dmi/id/product_name", "SYS-5019C-M\n");
  // product_serial unreadable (absent): the fact stays empty.

  const Facts f = collect(root.path());
  EXPECT_EQ(f.cpu.model, "Intel(R) Xeon(R) E-2288G");
  EXPECT_EQ(f.cpu.count, 2U);
  EXPECT_EQ(f.memory_bytes, 16318412ULL * 1024);
  ASSERT_EQ(f.disks.size(), 2U);
  EXPECT_EQ(f.disks[0].name, "nvme0n1");
  EXPECT_EQ(f.disks[0].size_bytes, 2000409264ULL * 512);
  EXPECT_EQ(f.disks[1].name, "sda");
  ASSERT_EQ(f.nics.size(), 2U);
  EXPECT_EQ(f.nics[0].name, "eno1");
  EXPECT_EQ(f.nics[1].name, "eth0");
  EXPECT_EQ(f.nics[1].mac, "52:54:00:12:34:56");
  EXPECT_EQ(f.dmi.vendor, "Supermicro");
  EXPECT_EQ(f.dmi.product, "SYS-5019C-M");
  EXPECT_EQ(f.dmi.serial, "");
  EXPECT_FALSE(f.arch.empty());

  const auto j = to_json(f);
  EXPECT_EQ(j.at("cpu").at("model").as_string(), "Intel(R) Xeon(R) E-2288G");
  EXPECT_EQ(j.at("cpu").at("count").to_number<int>(), 2);
  EXPECT_EQ(j.at("memory_bytes").to_number<std::uint64_t>(), 16318412ULL * 1024);
  EXPECT_EQ(j.at("disks").as_array()[1].at("name").as_string(), "sda");
  EXPECT_EQ(j.at("nics").as_array()[1].at("mac").as_string(), "52:54:00:12:34:56");
  EXPECT_EQ(j.at("dmi").at("vendor").as_string(), "Supermicro");
  EXPECT_TRUE(j.contains("arch"));
}

TEST(Facts, AnEmptyTreeGivesEmptyFactsNotAFailure) {
  TempDir root("lab-facts-empty");
  const Facts f = collect(root.path());
  EXPECT_EQ(f.cpu.count, 0U);
  EXPECT_EQ(f.memory_bytes, 0U);
  EXPECT_TRUE(f.disks.empty());
  EXPECT_TRUE(f.nics.empty());
}

TEST(Facts, ThisMachine) {
  const Facts f = collect("/");
  EXPECT_GT(f.cpu.count, 0U);
  EXPECT_GT(f.memory_bytes, 0U);
  for (const auto& n : f.nics)
    EXPECT_NE(n.name, "lo");
}

}  // namespace
