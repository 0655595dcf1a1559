#include "pxe/dhcp/engine/boot.hpp"

#include <gtest/gtest.h>

namespace {

using namespace lab::pxe::dhcp::engine;
using namespace lab::pxe::dhcp::wire;

BootConfig config() {
  BootConfig c;
  c.boot_url = "http://10.0.0.1:8080/boot/boot.ipxe";
  c.uefi_arm64_file = "ipxe-arm64.efi";
  return c;
}

Message pxe_client(std::uint16_t arch, std::string vendor = "") {
  Message m;
  if (vendor.empty()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "PXEClient:Arch:%05u:UNDI:003016", unsigned{arch});
    vendor = buf;
  }
  m.set(opt::kVendorClass, vendor);
  m.set(opt::kClientArch, std::vector<std::uint8_t>{static_cast<std::uint8_t>(arch >> 8),
                                                    static_cast<std::uint8_t>(arch)});
  return m;
}

struct Case {
  std::uint16_t arch;
  ClientKind kind;
  const char* file;
};

class ByArch : public ::testing::TestWithParam<Case> {};

TEST_P(ByArch, Option93PicksTheFile) {
  const Case c = GetParam();
  const auto d = decide_boot(pxe_client(c.arch), config());
  EXPECT_EQ(d.kind, c.kind);
  EXPECT_EQ(d.file, c.file);
  EXPECT_TRUE(d.pxe);
}

INSTANTIATE_TEST_SUITE_P(DhcpBoot, ByArch,
                         ::testing::Values(Case{0, ClientKind::bios, "undionly.kpxe"},
                                           Case{7, ClientKind::uefi_x64, "ipxe.efi"},
                                           Case{9, ClientKind::uefi_x64, "ipxe.efi"},
                                           Case{11, ClientKind::uefi_arm64, "ipxe-arm64.efi"},
                                           Case{6, ClientKind::uefi_ia32, ""},
                                           Case{16, ClientKind::uefi_http_x64,
                                                "http://10.0.0.1:8080/boot/ipxe.efi"},
                                           Case{19, ClientKind::uefi_http_arm64,
                                                "http://10.0.0.1:8080/boot/ipxe-arm64.efi"},
                                           Case{42, ClientKind::unsupported, ""}));

TEST(DhcpBoot, HttpClientGetsAUrlAndTheVendorClassEchoed) {
  auto d = decide_boot(pxe_client(16, "HTTPClient:Arch:00016:UNDI:003001"), config());
  EXPECT_EQ(d.kind, ClientKind::uefi_http_x64);
  EXPECT_EQ(d.vendor_class, "HTTPClient");
  EXPECT_EQ(d.file, "http://10.0.0.1:8080/boot/ipxe.efi");
  EXPECT_FALSE(d.pxe);
}

TEST(DhcpBoot, IpxeUserClassBreaksTheChainloadLoop) {
  Message m = pxe_client(0);
  m.set(opt::kUserClass, "iPXE");  // raw, as iPXE sends it
  auto d = decide_boot(m, config());
  EXPECT_EQ(d.kind, ClientKind::ipxe);
  EXPECT_EQ(d.file, "http://10.0.0.1:8080/boot/boot.ipxe");
  m.set(opt::kUserClass, std::vector<std::uint8_t>{4, 'i', 'P', 'X', 'E'});  // RFC 3004
  EXPECT_EQ(decide_boot(m, config()).kind, ClientKind::ipxe);
}

TEST(DhcpBoot, ArchFromVendorClassWhenOption93IsMissingOrBad) {
  Message m;
  m.set(opt::kVendorClass, "PXEClient:Arch:00007:UNDI:003016");
  EXPECT_EQ(decide_boot(m, config()).kind, ClientKind::uefi_x64);
  m.set(opt::kClientArch, std::vector<std::uint8_t>{0});
  EXPECT_EQ(decide_boot(m, config()).kind, ClientKind::uefi_x64);
}

TEST(DhcpBoot, OrdinaryClientsGetNothing) {
  Message m;
  EXPECT_EQ(decide_boot(m, config()).kind, ClientKind::none);
  m.set(opt::kVendorClass, "MSFT 5.0");
  EXPECT_EQ(decide_boot(m, config()).kind, ClientKind::none);
}

TEST(DhcpBoot, HttpBaseIsTheScriptsDirectory) {
  EXPECT_EQ(http_base("http://10.0.0.1:8080/boot/boot.ipxe"), "http://10.0.0.1:8080/boot/");
}

}  // namespace
