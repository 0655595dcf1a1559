// Boot file access stays inside its root: traversal, symlinks, special files.
#include "pxe/httpboot/files.hpp"

#include "pxe/httpboot/error.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

namespace {

using namespace lab::pxe::httpboot;
using lab::tests::TempDir;

TEST(HttpBootFiles, OpensRegularFilesWithSizeAndTime) {
  TempDir dir;
  std::filesystem::create_directories(dir / "root/agent");
  dir.write("root/agent/vmlinuz", "kernel-bytes");
  auto files = BootFiles::open(dir / "root");
  ASSERT_TRUE(files) << files.error().message();
  auto f = files->open_file("agent/vmlinuz");
  ASSERT_TRUE(f) << f.error().message();
  EXPECT_EQ(f->info.size, 12u);
  EXPECT_GT(f->info.mtime_sec, 0);
  char buf[6] = {};
  ASSERT_EQ(::pread(f->file->fd(), buf, 6, 0), 6);
  EXPECT_EQ(std::string(buf, 6), "kernel");
}

TEST(HttpBootFiles, RefusesTraversalAndMalformedPaths) {
  TempDir dir;
  std::filesystem::create_directories(dir / "root/a");
  dir.write("secret", "s");
  auto files = BootFiles::open(dir / "root");
  ASSERT_TRUE(files);
  for (const char* bad : {"", "/etc/passwd", "../secret", "a/../../secret", "a/..", "..", ".",
                          "a//b", "./a", "a/./b"}) {
    auto f = files->open_file(bad);
    ASSERT_FALSE(f) << bad;
    EXPECT_EQ(f.error(), HttpBootError::bad_file_path) << bad;
  }
  EXPECT_EQ(files->open_file(std::string("a\0b", 3)).error(), HttpBootError::bad_file_path);
}

TEST(HttpBootFiles, SymlinksMayNotLeaveTheRoot) {
  TempDir dir;
  std::filesystem::create_directories(dir / "root/sub");
  dir.write("secret", "s");
  dir.write("root/sub/inside", "i");
  std::filesystem::create_symlink(dir / "secret", dir / "root/out");
  std::filesystem::create_symlink("/", dir / "root/slash");
  std::filesystem::create_directory_symlink("..", dir / "root/up");
  auto files = BootFiles::open(dir / "root");
  ASSERT_TRUE(files);
  EXPECT_EQ(files->open_file("out").error(), HttpBootError::outside_root);
  EXPECT_EQ(files->open_file("slash/etc/passwd").error(), HttpBootError::outside_root);
  EXPECT_EQ(files->open_file("up/secret").error(), HttpBootError::outside_root);
}

TEST(HttpBootFiles, OnlyRegularFilesOpen) {
  TempDir dir;
  std::filesystem::create_directories(dir / "root/dir");
  ASSERT_EQ(::mkfifo((dir / "root/fifo").c_str(), 0600), 0);
  auto files = BootFiles::open(dir / "root");
  ASSERT_TRUE(files);
  EXPECT_EQ(files->open_file("dir").error(), HttpBootError::not_a_file);
  EXPECT_EQ(files->open_file("fifo").error(), HttpBootError::not_a_file);  // and did not hang
  EXPECT_EQ(files->open_file("missing").error(), HttpBootError::file_not_found);
  EXPECT_EQ(files->open_file("missing/x").error(), HttpBootError::file_not_found);
}

TEST(HttpBootFiles, TheRootMustBeADirectory) {
  TempDir dir;
  dir.write("file", "x");
  EXPECT_EQ(BootFiles::open(dir / "file").error(), HttpBootError::root_unusable);
  EXPECT_EQ(BootFiles::open(dir / "none").error(), HttpBootError::root_unusable);
}

}  // namespace
