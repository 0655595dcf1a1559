// Library closures (as ldd resolves them) and kernel module load order (from .modinfo).
#include "images/agentos/closure.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace {

using lab::images::module_dependencies;
using lab::images::module_load_order;
using lab::images::shared_libraries;

// What a module's .modinfo looks like among other ELF bytes.
std::string module_with(std::string_view depends) {
  using namespace std::string_literals;
  return "\x7f"
         "ELF junk\0license=GPL\0"s +
         "depends=" + std::string(depends) + "\0retpoline=Y\0name=x\0"s;
}

TEST(SharedLibraries, ADynamicProgramNeedsLibcAndTheLoaderAStaticOneNothing) {
  auto libs = shared_libraries("/bin/ls");
  ASSERT_TRUE(libs) << libs.error().message();
  auto has = [&](std::string_view part) {
    return std::any_of(libs->begin(), libs->end(), [&](const auto& p) {
      return p.string().find(part) != std::string::npos && p.is_absolute();
    });
  };
  EXPECT_TRUE(has("libc.so.6"));
  EXPECT_TRUE(has("ld-linux"));
  EXPECT_FALSE(has("vdso")) << "the vDSO lives in the kernel";

  auto none = shared_libraries("/bin/busybox");
  ASSERT_TRUE(none) << none.error().message();
  EXPECT_TRUE(none->empty());

  auto missing = shared_libraries("/no/such/program");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().detail().find("/no/such/program"), std::string::npos);
}

TEST(Modules, DependenciesComeFromModinfoAndLoadFirst) {
  EXPECT_EQ(module_dependencies(module_with("net_failover,virtio-ring")),
            (std::vector<std::string>{"net_failover", "virtio_ring"}));
  EXPECT_TRUE(module_dependencies(module_with("")).empty());
  // "xdepends=" inside another string is not the key.
  EXPECT_TRUE(module_dependencies(std::string("\0xdepends=a\0", 12)).empty());

  const std::map<std::string, std::string> modules = {
      {"virtio_net", module_with("net_failover")},
      {"net_failover", module_with("failover")},
      {"failover", module_with("")},
      {"e1000", module_with("")},
  };
  auto order = module_load_order(modules, {"virtio-net", "e1000", "failover"});
  ASSERT_TRUE(order) << order.error().message();
  EXPECT_EQ(*order, (std::vector<std::string>{"failover", "net_failover", "virtio_net", "e1000"}));
}

TEST(Modules, AMissingDependencyIsNamedWithWhoNeedsIt) {
  const std::map<std::string, std::string> modules = {{"virtio_net", module_with("net_failover")}};
  auto order = module_load_order(modules, {"virtio_net"});
  ASSERT_FALSE(order);
  EXPECT_NE(order.error().detail().find("net_failover (needed by virtio_net)"), std::string::npos)
      << order.error().detail();
  const std::map<std::string, std::string> loop = {{"a", module_with("b")},
                                                   {"b", module_with("a")}};
  EXPECT_FALSE(module_load_order(loop, {"a"}));
}

}  // namespace
