// The iPXE script of a machine is served only to the address lab's own DHCP server leased to
// that machine: a real client (busybox udhcpc) takes a lease, then curl asks for the script
// from that address and from another address of the same namespace.
#include "tests/integration/pxe/dhcp/dhcp_fixture.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

namespace {

using namespace lab::tests;
using namespace lab::tests::dhcp;

// The HTTP status of GET `url` sent from `source` inside `ns` (0 when curl failed).
int status_from(const NetNs& ns, const std::string& source, const std::string& url) {
  auto r = run({"ip", "netns", "exec", ns.name(), "curl", "-s", "-o", "/dev/null", "-w",
                "%{http_code}", "--max-time", "10", "--interface", source, url},
               20s);
  try {
    return std::stoi(r.output);
  } catch (const std::exception&) {
    ADD_FAILURE() << "curl: " << r.output;
    return 0;
  }
}

TEST(DhcpHttpBinding, ScriptOnlyForTheAddressTheLeaseGave) {
  LAB_REQUIRE_ROOT();
  LAB_REQUIRE_PROGRAM("busybox");
  LAB_REQUIRE_PROGRAM("curl");
  NetNs server("dbs");
  NetNs client("dbc");
  Veth link(server, "10.77.0.1/24", client, "");
  TempDir dir("lab-dhcp-binding");
  std::filesystem::create_directories(dir.path() / "root");
  const std::string config =
      "[dhcp]\nenabled = true\nmode = \"full\"\nconflict_probe = false\ninterface = \"" +
      link.a_name() +
      "\"\n[[dhcp.subnets]]\nsubnet = \"10.77.0.0/24\"\nrange_start = \"10.77.0.100\"\n"
      "range_end = \"10.77.0.199\"\n"
      "[httpboot]\nenabled = true\nlisten = \"10.77.0.1:8080\"\nroot = \"" +
      (dir.path() / "root").string() +
      "\"\n[[httpboot.profiles]]\nname = \"discovery\"\nkernel = \"disc/vmlinuz\"\n"
      "cmdline = \"quiet\"\n";
  auto lab = start_lab(server, dir, config);

  // A real DHCP client takes a lease; its script only reports the address.
  const auto env_file = dir / "udhcpc.env";
  const auto script = dir.write("udhcpc.sh", "#!/bin/sh\n[ \"$1\" = bound ] && echo \"$ip\" > " +
                                                 env_file.string() + "\nexit 0\n");
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  auto r = run({"ip", "netns", "exec", client.name(), "busybox", "udhcpc", "-f", "-q", "-n", "-i",
                link.b_name(), "-s", script.string(), "-t", "6", "-T", "1", "-A", "1"},
               30s);
  std::string leased = read_file(env_file);
  while (!leased.empty() && (leased.back() == '\n' || leased.back() == ' '))
    leased.pop_back();
  ASSERT_FALSE(leased.empty()) << r.output << lab.output();
  auto mac = run({"ip", "netns", "exec", client.name(), "cat",
                  "/sys/class/net/" + link.b_name() + "/address"})
                 .output;
  while (!mac.empty() && mac.back() == '\n')
    mac.pop_back();

  // The leased address and one the DHCP server never gave, on the same interface.
  client.ip("addr add " + leased + "/24 dev " + link.b_name());
  client.ip("addr add 10.77.0.250/24 dev " + link.b_name());
  const std::string url = "http://10.77.0.1:8080/boot/" + mac + ".ipxe";
  EXPECT_EQ(status_from(client, leased, url), 200) << lab.output();
  EXPECT_EQ(status_from(client, "10.77.0.250", url), 403) << lab.output();
  EXPECT_EQ(status_from(client, leased, url), 200) << lab.output();
  EXPECT_NE(lab.output().find("script refused"), std::string::npos);
  EXPECT_TRUE(lab.running());
}

}  // namespace
