// The pure parts of the disk deploy: the signed manifest, which disk, the layout's names.
#include "images/deploy/disks.hpp"
#include "images/deploy/error.hpp"
#include "images/deploy/layout.hpp"
#include "images/deploy/manifest.hpp"
#include "shared/envelope/envelope.hpp"
#include "tests/support/temp_dir.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <fstream>

namespace lab::images::deploy {
namespace {

namespace fs = std::filesystem;
using shared::crypto::Ed25519PrivateKey;

boost::json::object good_manifest() {
  return {{"kind", "rootfs"},
          {"name", "bookworm"},
          {"suite", "bookworm"},
          {"architecture", "amd64"},
          {"kernel_version", "6.1.0-28-amd64"},
          {"installed_size", 900000000},
          {"files",
           boost::json::array{boost::json::object{
               {"name", "rootfs.tar.zst"}, {"size", 123456}, {"sha256", std::string(64, 'a')}}}}};
}

shared::crypto::Bytes sealed(const Ed25519PrivateKey& key, const boost::json::object& m,
                             std::string_view kind = "manifest") {
  const auto text = boost::json::serialize(m) + "\n";
  return shared::envelope::seal(key, kind, shared::crypto::as_bytes(text)).value();
}

TEST(DeployManifest, OpensASignedRootfsManifest) {
  const auto key = Ed25519PrivateKey::generate().value();
  auto m = open_manifest(sealed(key, good_manifest()), key.public_key());
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->name, "bookworm");
  EXPECT_EQ(m->kernel_version, "6.1.0-28-amd64");
  EXPECT_EQ(m->installed_size, 900000000U);
  EXPECT_EQ(m->file, "rootfs.tar.zst");
  EXPECT_EQ(m->size, 123456U);
  EXPECT_EQ(m->sha256, std::string(64, 'a'));
}

TEST(DeployManifest, RefusesAnotherKeyAnotherKindAndBadFields) {
  const auto key = Ed25519PrivateKey::generate().value();
  const auto other = Ed25519PrivateKey::generate().value();
  auto wrong_key = open_manifest(sealed(other, good_manifest()), key.public_key());
  ASSERT_FALSE(wrong_key);
  EXPECT_EQ(wrong_key.error(), DeployError::bad_manifest);
  EXPECT_NE(wrong_key.error().detail().find("not signed by this appliance"), std::string::npos);

  EXPECT_FALSE(open_manifest(sealed(key, good_manifest(), "bundle"), key.public_key()));

  auto agent_os = good_manifest();
  agent_os["kind"] = "agent-os";
  auto r = open_manifest(sealed(key, agent_os), key.public_key());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail().find("agent-os"), std::string::npos);

  auto path_name = good_manifest();
  path_name["files"].as_array()[0].as_object()["name"] = "../../etc/shadow";
  r = open_manifest(sealed(key, path_name), key.public_key());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail().find("is a path"), std::string::npos);

  auto bad_hash = good_manifest();
  bad_hash["files"].as_array()[0].as_object()["sha256"] = "ABC";
  EXPECT_FALSE(open_manifest(sealed(key, bad_hash), key.public_key()));

  auto no_size = good_manifest();
  no_size.erase("installed_size");
  r = open_manifest(sealed(key, no_size), key.public_key());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail().find("installed_size"), std::string::npos);

  auto two_files = good_manifest();
  two_files["files"].as_array().push_back(two_files["files"].as_array()[0]);
  EXPECT_FALSE(open_manifest(sealed(key, two_files), key.public_key()));

  const std::string garbage = "not an envelope";
  EXPECT_FALSE(open_manifest(shared::crypto::as_bytes(garbage), key.public_key()));
}

// A /sys/block of our own making.
class FakeSys {
 public:
  void disk(const std::string& name, std::uint64_t bytes, bool removable = false,
            const std::string& serial = {}, bool ro = false) {
    const auto d = dir_.path() / name;
    fs::create_directories(d);
    std::ofstream(d / "size") << bytes / 512 << "\n";
    std::ofstream(d / "removable") << (removable ? 1 : 0) << "\n";
    std::ofstream(d / "ro") << (ro ? 1 : 0) << "\n";
    if (!serial.empty())
      std::ofstream(d / "serial") << serial << "\n";
  }
  [[nodiscard]] const fs::path& path() const { return dir_.path(); }

 private:
  tests::TempDir dir_{"lab-sys"};
};

constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;

TEST(DeployDisks, TheLargestFixedWritableDiskByDefault) {
  FakeSys sys;
  sys.disk("sda", 100 * kGiB, /*removable=*/true);
  sys.disk("vda", 8 * kGiB, false, "boot-disk");
  sys.disk("vdb", 16 * kGiB, false, "data-disk");
  sys.disk("vdc", 32 * kGiB, false, {}, /*ro=*/true);
  sys.disk("loop0", 64 * kGiB);
  sys.disk("sr0", 1 * kGiB);
  sys.disk("vdd", 0);
  const auto disks = list_disks(sys.path(), "/dev");
  ASSERT_EQ(disks.size(), 4U);  // no loop, no optical drive, no empty drive
  auto d = choose_disk("", sys.path(), "/dev");
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(d->path, "/dev/vdb");
  EXPECT_EQ(d->size, 16 * kGiB);
  EXPECT_EQ(d->serial, "data-disk");
}

TEST(DeployDisks, BySerialOrPathAndAClearErrorOtherwise) {
  FakeSys sys;
  sys.disk("vda", 8 * kGiB, false, "boot-disk");
  sys.disk("vdb", 16 * kGiB, false, "data-disk");
  sys.disk("loop3", 4 * kGiB);
  sys.disk("vdc", 4 * kGiB, false, {}, true);
  EXPECT_EQ(choose_disk("serial=boot-disk", sys.path(), "/dev")->path, "/dev/vda");
  EXPECT_EQ(choose_disk("/dev/vda", sys.path(), "/dev")->path, "/dev/vda");
  // A loop device only when named: never chosen on its own.
  EXPECT_EQ(choose_disk("/dev/loop3", sys.path(), "/dev")->path, "/dev/loop3");

  auto none = choose_disk("serial=nope", sys.path(), "/dev");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error(), DeployError::no_disk);
  EXPECT_NE(none.error().detail().find("/dev/vda 8.0 GiB serial=boot-disk"), std::string::npos)
      << none.error().detail();
  auto ro = choose_disk("/dev/vdc", sys.path(), "/dev");
  ASSERT_FALSE(ro);
  EXPECT_NE(ro.error().detail().find("read-only"), std::string::npos);
  EXPECT_FALSE(choose_disk("/etc/passwd", sys.path(), "/dev"));
  EXPECT_FALSE(choose_disk("vda", sys.path(), "/dev"));

  FakeSys empty;
  auto nothing = choose_disk("", empty.path(), "/dev");
  ASSERT_FALSE(nothing);
  EXPECT_NE(nothing.error().detail().find("no disk at all"), std::string::npos);
}

TEST(DeployLayout, PartitionNamesSizesAndFstab) {
  EXPECT_EQ(partition_path("/dev/vda", 3), "/dev/vda3");
  EXPECT_EQ(partition_path("/dev/sdb", 2), "/dev/sdb2");
  EXPECT_EQ(partition_path("/dev/nvme0n1", 3), "/dev/nvme0n1p3");
  EXPECT_EQ(partition_path("/dev/loop7", 1), "/dev/loop7p1");
  EXPECT_EQ(required_size(0), 2 * kMiB + kEspSize + 256 * kMiB);
  EXPECT_EQ(required_size(800 * kMiB), 2 * kMiB + kEspSize + 1000 * kMiB + 256 * kMiB);
  const auto script = sfdisk_script();
  EXPECT_NE(script.find("label: gpt"), std::string::npos);
  EXPECT_NE(script.find("21686148-6E49-704E-6F74-4E6565644546"), std::string::npos);  // BIOS boot
  EXPECT_NE(script.find("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"), std::string::npos);  // ESP
  Layout l;
  l.root_uuid = "0b6f3e8e-9d5c-4f7a-8a39-1f2e3d4c5b6a";
  l.esp_uuid = "1A2B-3C4D";
  const auto f = fstab(l);
  EXPECT_NE(f.find("UUID=0b6f3e8e-9d5c-4f7a-8a39-1f2e3d4c5b6a / ext4"), std::string::npos);
  EXPECT_NE(f.find("UUID=1A2B-3C4D /boot/efi vfat"), std::string::npos);
  EXPECT_EQ(size_text(512), "512 B");
  EXPECT_EQ(size_text(3 * kGiB / 2), "1.5 GiB");
}

}  // namespace
}  // namespace lab::images::deploy
