// The initramfs writer, checked with an independent reader: busybox cpio.
#include "images/archive/cpio.hpp"

#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace {

using namespace lab::tests;
using lab::images::Compression;
using lab::images::CpioImage;

std::string bytes_of(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

CpioImage sample() {
  CpioImage image;
  image.add_file("/init", "#!/bin/sh\necho hi\n", 0755);
  image.add_file("/etc/lab/labd.toml", "key_protection = \"file\"\n");
  image.add_symlink("/bin/sh", "busybox");
  image.add_directory("/proc");
  image.add_char_device("/dev/console", 0600, 5, 1);
  return image;
}

// `busybox cpio -tv` of the (decompressed) archive.
std::string listing(const std::filesystem::path& archive, Compression c) {
  const std::string cat = c == Compression::zstd   ? "zstd -dc "
                          : c == Compression::gzip ? "gzip -dc "
                                                   : "cat ";
  auto r = sh(cat + archive.string() + " | busybox cpio -tv");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return r.output;
}

TEST(CpioImage, SameEntriesGiveTheSameBytesWhateverTheOrderAdded) {
  LAB_REQUIRE_PROGRAM("busybox");
  TempDir dir;
  for (auto c : {Compression::none, Compression::gzip, Compression::zstd}) {
    CpioImage reversed;
    reversed.add_char_device("/dev/console", 0600, 5, 1);
    reversed.add_directory("/proc");
    reversed.add_symlink("/bin/sh", "busybox");
    reversed.add_file("/etc/lab/labd.toml", "key_protection = \"file\"\n");
    reversed.add_file("/init", "#!/bin/sh\necho hi\n", 0755);
    ASSERT_TRUE(sample().write(dir.path() / "a", c, 1700000000));
    // A second apart: a timestamp from the clock would show.
    std::this_thread::sleep_for(1100ms);
    ASSERT_TRUE(reversed.write(dir.path() / "b", c, 1700000000));
    EXPECT_EQ(bytes_of(dir.path() / "a"), bytes_of(dir.path() / "b"));
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "a.tmp"));
  }
}

TEST(CpioImage, AnIndependentReaderSeesSortedEntriesParentsOwnersAndTheFixedTime) {
  LAB_REQUIRE_PROGRAM("busybox");
  LAB_REQUIRE_PROGRAM("zstd");
  TempDir dir;
  ASSERT_TRUE(sample().write(dir.path() / "initrd", Compression::zstd, 1700000000));
  const auto out = listing(dir.path() / "initrd", Compression::zstd);
  std::vector<std::string> names;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (line.ends_with(" blocks")) {
      continue;
    }
    EXPECT_NE(line.find(" 0/0 "), std::string::npos) << "owned by root: " << line;
    EXPECT_NE(line.find("2023-11-14"), std::string::npos) << "mtime 1700000000: " << line;
    // "perm owner size date time name[ -> target]"
    std::istringstream fields(line);
    std::string skip;
    std::string name;
    fields >> skip >> skip >> skip >> skip >> skip >> name;
    names.push_back(name);
  }
  // Parents are implicit and come first.
  const std::vector<std::string> expected = {
      "bin", "bin/sh", "dev", "dev/console", "etc", "etc/lab", "etc/lab/labd.toml", "init", "proc"};
  EXPECT_EQ(names, expected) << out;
  EXPECT_NE(out.find("-rwxr-xr-x"), std::string::npos);  // /init
  EXPECT_NE(out.find("crw-------"), std::string::npos);  // /dev/console
  EXPECT_NE(out.find("lrwxrwxrwx"), std::string::npos);  // /bin/sh

  // Content survives the round trip.
  auto r =
      sh("cd " + dir.path().string() +
         " && mkdir x && cd x && zstd -dc ../initrd | busybox cpio -id 2>/dev/null && cat init");
  EXPECT_EQ(r.output, "#!/bin/sh\necho hi\n");
}

TEST(CpioImage, BadInputsAreNamed) {
  CpioImage image;
  auto missing = image.add_file_from("/bin/x", "/nonexistent/file");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().detail().find("/nonexistent/file"), std::string::npos);
  auto dir = image.add_file_from("/bin/x", "/etc");
  ASSERT_FALSE(dir);
  auto c = lab::images::parse_compression("lzma");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().detail().find("lzma"), std::string::npos);
  TempDir tmp;
  auto unwritable = image.write(tmp.path() / "no/such/dir/initrd", Compression::none, 0);
  ASSERT_FALSE(unwritable);
  EXPECT_NE(unwritable.error().detail().find("no/such/dir"), std::string::npos);
}

}  // namespace
