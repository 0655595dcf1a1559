#include "bootstrap/serve/config_values.hpp"

#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <filesystem>

namespace lab::bootstrap::serve {
namespace {

TEST(ParseListen, AcceptsIpv4Ipv6AndPortZero) {
  auto v4 = parse_listen("tftp.listen", "10.0.0.1:69");
  ASSERT_TRUE(v4) << v4.error().message();
  EXPECT_EQ(v4->host, "10.0.0.1");
  EXPECT_EQ(v4->port, 69);
  auto v6 = parse_listen("httpboot.listen", "[::]:8080");
  ASSERT_TRUE(v6) << v6.error().message();
  EXPECT_EQ(v6->host, "::");
  EXPECT_EQ(v6->port, 8080);
  auto any = parse_listen("coordinator.listen", "127.0.0.1:0");
  ASSERT_TRUE(any);
  EXPECT_EQ(any->port, 0);
}

TEST(ParseListen, ErrorsNameTheKeyAndTheValue) {
  for (const char* bad :
       {"nowhere", ":69", "10.0.0.1:", "10.0.0.1:65536", "10.0.0.1:6x9", "10.0.0.1:-1"}) {
    auto r = parse_listen("tftp.listen", bad);
    ASSERT_FALSE(r) << bad;
    const std::string text = r.error().message();
    EXPECT_NE(text.find("tftp.listen"), std::string::npos) << text;
    EXPECT_NE(text.find(bad), std::string::npos) << text;
  }
}

TEST(ServedRoot, ConfiguredRootIsUsedAsIsAndDefaultIsCreated) {
  tests::TempDir dir("lab-serve-root");
  auto configured = served_root(dir.path(), "/srv/typo-not-created", "tftp");
  ASSERT_TRUE(configured);
  EXPECT_EQ(*configured, "/srv/typo-not-created");
  EXPECT_FALSE(std::filesystem::exists("/srv/typo-not-created"));

  auto made = served_root(dir.path(), "", "tftp");
  ASSERT_TRUE(made) << made.error().message();
  EXPECT_EQ(*made, dir.path() / "tftp");
  EXPECT_TRUE(std::filesystem::is_directory(*made));
}

TEST(ServedRoot, UncreatableDefaultIsAnErrorNamingThePath) {
  tests::TempDir dir("lab-serve-root");
  const auto file = dir.path() / "file";
  {
    std::FILE* f = std::fopen(file.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
  }
  auto r = served_root(file, "", "boot");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find((file / "boot").string()), std::string::npos)
      << r.error().message();
}

}  // namespace
}  // namespace lab::bootstrap::serve
