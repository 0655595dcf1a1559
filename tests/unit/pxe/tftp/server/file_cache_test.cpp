#include "pxe/tftp/server/file_cache.hpp"

#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/time.h>

namespace {

using namespace lab::pxe::tftp::server;
using lab::tests::TempDir;

std::string read_source(lab::pxe::tftp::engine::FileSource& s) {
  std::string out(s.size(), '\0');
  auto n = s.read(0, {reinterpret_cast<std::uint8_t*>(out.data()), out.size()});
  EXPECT_TRUE(n);
  out.resize(n ? *n : 0);
  return out;
}

TEST(TftpFileCache, SmallFilesComeFromMemoryUntilTheyChange) {
  TempDir dir;
  const auto path = dir.write("a.bin", "first");
  auto root = Root::open(dir.path());
  ASSERT_TRUE(root);
  FileCache cache(16, 64);
  auto s1 = cache.source(*root->open_file("a.bin"), false);
  ASSERT_TRUE(s1);
  EXPECT_EQ(read_source(**s1), "first");
  EXPECT_EQ(cache.bytes(), 5U);
  auto s2 = cache.source(*root->open_file("a.bin"), false);
  EXPECT_EQ(cache.hits(), 1U);
  EXPECT_EQ(read_source(**s2), "first");
  // Same size, new mtime: read again, the old copy dropped.
  dir.write("a.bin", "again");
  const timeval times[2] = {{1000, 0}, {1000, 0}};
  ASSERT_EQ(::utimes(path.c_str(), times), 0);
  auto s3 = cache.source(*root->open_file("a.bin"), false);
  EXPECT_EQ(read_source(**s3), "again");
  EXPECT_EQ(cache.hits(), 1U);
  EXPECT_EQ(cache.bytes(), 5U);
}

TEST(TftpFileCache, LargeFilesAreReadWithPreadAndTheTotalIsBounded) {
  TempDir dir;
  dir.write("big", std::string(100, 'b'));
  for (char c : {'x', 'y', 'z'})
    dir.write(std::string(1, c), std::string(10, c));
  auto root = Root::open(dir.path());
  ASSERT_TRUE(root);
  FileCache cache(16, 25);
  auto big = cache.source(*root->open_file("big"), false);
  ASSERT_TRUE(big);
  EXPECT_EQ(read_source(**big), std::string(100, 'b'));
  std::string part(10, '\0');
  auto n = (*big)->read(95, {reinterpret_cast<std::uint8_t*>(part.data()), part.size()});
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 5U);
  EXPECT_EQ(cache.bytes(), 0U);
  for (const char* f : {"x", "y", "z"})
    ASSERT_TRUE(cache.source(*root->open_file(f), false));
  EXPECT_EQ(cache.bytes(), 20U);                              // x evicted
  ASSERT_FALSE(cache.source(*root->open_file("big"), true));  // netascii needs memory
}

TEST(TftpFileCache, NetasciiIsConvertedAndCachedApart) {
  TempDir dir;
  dir.write("t.txt", "a\nb");
  auto root = Root::open(dir.path());
  ASSERT_TRUE(root);
  FileCache cache(16, 64);
  auto text = cache.source(*root->open_file("t.txt"), true);
  ASSERT_TRUE(text);
  EXPECT_EQ(read_source(**text), "a\r\nb");
  auto raw = cache.source(*root->open_file("t.txt"), false);
  EXPECT_EQ(read_source(**raw), "a\nb");
}

}  // namespace
