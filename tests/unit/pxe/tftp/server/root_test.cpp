// Root confinement on a real directory tree with symlinks, a FIFO and a device node.
#include "pxe/tftp/server/root.hpp"

#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace {

using namespace lab::pxe::tftp::server;
using lab::tests::TempDir;

class TftpRoot : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(outside_.path() / "secret");
    outside_.write("secret/passwd", "root:x:0:0");
    std::filesystem::create_directories(dir_.path() / "root/boot");
    dir_.write("root/boot/ipxe.efi", "EFI");
    dir_.write("root/hello.txt", "hello");
    const auto root = dir_.path() / "root";
    std::filesystem::create_symlink("boot/ipxe.efi", root / "inside-link");
    std::filesystem::create_symlink(outside_.path() / "secret/passwd", root / "outside-abs");
    std::filesystem::create_symlink(
        "../../../" + outside_.path().filename().string() + "/secret/passwd",
        root / "boot/outside-rel");
    std::filesystem::create_symlink("/dev/zero", root / "zero");
    std::filesystem::create_symlink(outside_.path() / "secret", root / "dirlink");
    ASSERT_EQ(::mkfifo((root / "fifo").c_str(), 0600), 0);
    auto r = Root::open(root);
    ASSERT_TRUE(r) << r.error().message();
    root_.emplace(std::move(*r));
    root_->set_use_openat2(GetParam());
  }

  std::string read_all(const OpenFile& f) {
    std::string s(f.size(), '\0');
    EXPECT_EQ(::pread(f.fd(), s.data(), s.size(), 0), static_cast<ssize_t>(s.size()));
    return s;
  }

  TempDir outside_{"lab-tftp-outside"};
  TempDir dir_{"lab-tftp-root"};
  std::optional<Root> root_;
};

TEST_P(TftpRoot, OpensFilesInsideTheRoot) {
  auto f = root_->open_file("boot/ipxe.efi");
  ASSERT_TRUE(f) << f.error().message();
  EXPECT_EQ(read_all(*f), "EFI");
  EXPECT_EQ(f->relative(), "boot/ipxe.efi");
  auto g = root_->open_file("/boot//./ipxe.efi");  // leading '/' is relative to the root
  ASSERT_TRUE(g);
  EXPECT_EQ(g->relative(), "boot/ipxe.efi");
  auto link = root_->open_file("inside-link");
  ASSERT_TRUE(link) << link.error().message();
  EXPECT_EQ(read_all(*link), "EFI");
}

TEST_P(TftpRoot, RefusesTraversal) {
  for (const char* name : {"../etc/passwd", "boot/../hello.txt", "/../../etc/passwd", ".."}) {
    auto f = root_->open_file(name);
    ASSERT_FALSE(f) << name;
    EXPECT_EQ(f.error(), RootError::traversal) << name;
  }
}

TEST_P(TftpRoot, RefusesSymlinksOutOfTheRoot) {
  for (const char* name : {"outside-abs", "boot/outside-rel", "zero", "dirlink/passwd"}) {
    auto f = root_->open_file(name);
    ASSERT_FALSE(f) << name;
    EXPECT_EQ(f.error(), RootError::escapes_root) << name << ": " << f.error().message();
  }
}

TEST_P(TftpRoot, RefusesWhatIsNotARegularFile) {
  for (const char* name : {"boot", "fifo", "/"}) {
    auto f = root_->open_file(name);
    ASSERT_FALSE(f) << name;
    EXPECT_EQ(f.error(), RootError::not_regular) << name;
  }
  auto missing = root_->open_file("nope.bin");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), RootError::not_found);
  auto under_file = root_->open_file("hello.txt/x");
  ASSERT_FALSE(under_file);
  EXPECT_EQ(under_file.error(), RootError::not_found);
}

TEST_P(TftpRoot, RefusesDeviceNodes) {
  if (!lab::tests::is_root())
    GTEST_SKIP() << "needs root to create a device node";
  const auto node = dir_.path() / "root/null";
  ASSERT_EQ(::mknod(node.c_str(), S_IFCHR | 0600, makedev(1, 3)), 0);
  auto f = root_->open_file("null");
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error(), RootError::not_regular);
}

INSTANTIATE_TEST_SUITE_P(Resolution, TftpRoot, ::testing::Values(true, false),
                         [](const auto& p) { return p.param ? "openat2" : "realpath"; });

TEST(TftpRootOpen, MissingRootIsAStartUpError) {
  auto r = Root::open("/nonexistent/tftp");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), RootError::root_unusable);
}

}  // namespace
