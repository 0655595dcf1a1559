// `lab image agent-os` with Debian's real kernel package and the real labd: reproducible bytes,
// a manifest that matches and verifies, and an initramfs in which labd actually runs.
#include "images/agentos/agentos.hpp"

#include "shared/crypto/encoding.hpp"
#include "shared/crypto/keys.hpp"
#include "shared/envelope/envelope.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include <fstream>

namespace {

using namespace lab::tests;
namespace fs = std::filesystem;

std::string bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

const fs::path kKernelDir = "/var/cache/lab/kernel";  // filled by packaging/install-deps.sh

TEST(AgentOs, ReproducibleSignedAndComplete) {
  auto deb = lab::images::newest_kernel_deb(kKernelDir);
  if (!deb) {
    GTEST_SKIP() << deb.error().detail() << " (packaging/install-deps.sh downloads it)";
  }
  LAB_REQUIRE_PROGRAM("busybox");
  LAB_REQUIRE_PROGRAM("zstd");
  TempDir dir;
  // A signing key as the appliance keeps it: the base64url Ed25519 seed in bundle.key.
  auto key = lab::shared::crypto::Ed25519PrivateKey::generate();
  ASSERT_TRUE(key);
  fs::create_directories(dir.path() / "data");
  dir.write("data/bundle.key", lab::shared::crypto::base64url_encode(key->seed()) + "\n");

  // Without debug information: a sanitizer build of labd is hundreds of MiB.
  const fs::path labd = dir.path() / "labd";
  auto stripped = run({"strip", "--strip-debug", "-o", labd.string(), labd_binary().string()});
  ASSERT_EQ(stripped.exit_code, 0) << stripped.output;
  const fs::path labd_deploy = dir.path() / "labd-deploy";
  stripped = run({"strip", "--strip-debug", "-o", labd_deploy.string(),
                  (build_dir() / "agent/deploy/labd-deploy").string()});
  ASSERT_EQ(stripped.exit_code, 0) << stripped.output;
  std::vector<std::string> base = {
      lab_binary().string(),          "image",        "agent-os",         "--data-dir",
      (dir.path() / "data").string(), "--labd",       labd.string(),      "--labd-deploy",
      labd_deploy.string(),           "--kernel-dir", kKernelDir.string()};
  auto build = [&](const std::string& out, const std::string& epoch) {
    auto argv = base;
    argv.insert(argv.end(), {"--out", (dir.path() / out).string()});
    return run(argv, 600s, {{"SOURCE_DATE_EPOCH", epoch}});
  };
  auto first = build("a", "1700000000");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  auto second = build("b", "1700000000");
  ASSERT_EQ(second.exit_code, 0) << second.output;
  for (const char* f : {"vmlinuz", "initrd.img", "manifest.json"}) {
    EXPECT_EQ(bytes_of(dir.path() / "a" / f), bytes_of(dir.path() / "b" / f)) << f;
  }

  // The manifest lists both files with their real sizes and hashes, and its signature verifies
  // with the appliance's key only.
  const std::string manifest = bytes_of(dir.path() / "a/manifest.json");
  const auto sig = bytes_of(dir.path() / "a/manifest.sig");
  auto opened = lab::shared::envelope::open(lab::shared::crypto::as_bytes(sig), key->public_key(),
                                            "manifest");
  ASSERT_TRUE(opened) << opened.error().message();
  EXPECT_EQ(std::string(opened->payload.begin(), opened->payload.end()), manifest);
  auto stranger = lab::shared::crypto::Ed25519PrivateKey::generate();
  EXPECT_FALSE(lab::shared::envelope::open(lab::shared::crypto::as_bytes(sig),
                                           stranger->public_key(), "manifest"));
  const auto m = boost::json::parse(manifest).as_object();
  EXPECT_EQ(m.at("kind"), "agent-os");
  for (const auto& f : m.at("files").as_array()) {
    const auto& o = f.as_object();
    const fs::path p = dir.path() / "a" / std::string(o.at("name").as_string());
    EXPECT_EQ(static_cast<std::uint64_t>(o.at("size").as_int64()), fs::file_size(p));
    auto sum = sh("sha256sum " + p.string() + " | cut -d' ' -f1");
    EXPECT_EQ(sum.output, std::string(o.at("sha256").as_string()) + "\n");
  }
  const auto modules = m.at("modules").as_array();
  auto pos = [&](const char* name) {
    return std::find(modules.begin(), modules.end(), boost::json::value(name)) - modules.begin();
  };
  ASSERT_LT(pos("virtio_net"), static_cast<long>(modules.size()));
  EXPECT_LT(pos("failover"), pos("net_failover"));
  EXPECT_LT(pos("net_failover"), pos("virtio_net"));
  // The deploy's disks and file systems, each after what it needs.
  for (const char* name : {"virtio_blk", "ahci", "nvme", "ext4", "vfat", "nls_cp437"})
    EXPECT_LT(pos(name), static_cast<long>(modules.size())) << name;
  EXPECT_LT(pos("jbd2"), pos("ext4"));
  EXPECT_LT(pos("fat"), pos("vfat"));
  EXPECT_EQ(m.at("labd_deploy_sha256").as_string().size(), 64U);

  // Unpacked, the initramfs holds /init and a labd that runs with exactly the libraries in it.
  const fs::path root = dir.path() / "root";
  fs::create_directories(root);
  auto unpack = sh("cd " + root.string() + " && zstd -dc ../a/initrd.img | busybox cpio -id");
  ASSERT_EQ(unpack.exit_code, 0) << unpack.output;
  EXPECT_TRUE(fs::exists(root / "init"));
  auto listing = sh("zstd -dc " + (dir.path() / "a/initrd.img").string() + " | busybox cpio -tv");
  EXPECT_NE(listing.output.find("2023-11-14"), std::string::npos)
      << "SOURCE_DATE_EPOCH=1700000000 must be every mtime";
  EXPECT_TRUE(fs::exists(root / "bin/busybox"));
  EXPECT_TRUE(fs::exists(root / "etc/ssl/certs/ca-certificates.crt"));
  EXPECT_EQ(bytes_of(root / "bin/labd"), bytes_of(labd));
  EXPECT_EQ(bytes_of(root / "bin/labd-deploy"), bytes_of(labd_deploy));
  for (const char* tool : {"usr/sbin/sfdisk", "usr/sbin/mke2fs", "usr/sbin/mkfs.fat"})
    EXPECT_TRUE(fs::exists(root / tool)) << tool;
  if (is_root()) {
    // In a private mount namespace with /proc, which sanitizer builds of labd need.
    auto version = run({"unshare", "--mount", "--propagation", "private", "sh", "-c",
                        "mount -t proc proc " + (root / "proc").string() + " && exec chroot " +
                            root.string() + " /bin/labd --version"},
                       30s);
    EXPECT_EQ(version.exit_code, 0) << version.output;
    // labd-deploy and the programs it runs find every library they need inside.
    for (const char* program : {"/bin/labd-deploy --help", "/usr/sbin/sfdisk --version",
                                "/usr/sbin/mke2fs -V", "/usr/sbin/mkfs.fat --help"}) {
      auto runs = run({"unshare", "--mount", "--propagation", "private", "sh", "-c",
                       "mount -t proc proc " + (root / "proc").string() + " && exec chroot " +
                           root.string() + " " + program},
                      30s);
      EXPECT_EQ(runs.exit_code, 0) << program << ": " << runs.output;
    }
    auto shell = run({"chroot", root.string(), "/bin/sh", "-n", "/init"}, 30s);
    EXPECT_EQ(shell.exit_code, 0) << "/init must parse: " << shell.output;
  }
}

TEST(AgentOs, MissingInputsAreNamed) {
  TempDir dir;
  auto r = run({lab_binary().string(), "image", "agent-os", "--out", (dir.path() / "o").string(),
                "--kernel-deb", "/nonexistent.deb", "--no-sign", "--labd", labd_binary().string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("/nonexistent.deb"), std::string::npos) << r.output;
  auto unsigned_key = run({lab_binary().string(), "image", "agent-os", "--out",
                           (dir.path() / "o").string(), "--data-dir", dir.path().string()});
  EXPECT_EQ(unsigned_key.exit_code, 1);
  EXPECT_NE(unsigned_key.output.find("bundle.key"), std::string::npos) << unsigned_key.output;
  auto bad =
      run({lab_binary().string(), "image", "agent-os", "--out", "x", "--compression", "lzma"});
  EXPECT_EQ(bad.exit_code, 2);
}

}  // namespace
