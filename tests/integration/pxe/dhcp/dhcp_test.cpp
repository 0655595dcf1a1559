// The DHCP server of `lab serve` against real clients (ISC dhclient, busybox udhcpc, Kea's
// perfdhcp) in network namespaces: full DORA, renew, release, reservations, unicast or
// broadcast replies, relays, proxy mode beside dnsmasq, boot files by architecture, kill -9,
// and malformed packets over a real socket.
#include "tests/integration/pxe/dhcp/dhcp_fixture.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <sstream>

namespace {

using namespace lab::tests;
using namespace lab::tests::dhcp;
namespace opt = wire::opt;

constexpr const char* kServerIp = "10.77.0.1";

std::string full_config(const std::string& interface, const std::string& lease_time = "1h",
                        const std::string& extra = {}) {
  return "[dhcp]\nenabled = true\nmode = \"full\"\nconflict_probe = false\ninterface = \"" +
         interface + "\"\n" + extra +
         "\n[[dhcp.subnets]]\nsubnet = \"10.77.0.0/24\"\nrange_start = \"10.77.0.100\"\n"
         "range_end = \"10.77.0.199\"\nrouter = \"10.77.0.1\"\ndns = [\"10.77.0.53\"]\n"
         "lease_time = \"" +
         lease_time + "\"\n";
}

// A server namespace and a client namespace joined by a veth pair; the client end has no
// address, as a booting machine's NIC.
struct Segment {
  NetNs server{"dhs"};
  NetNs client{"dhc"};
  Veth link{server, "10.77.0.1/24", client, ""};
  TempDir dir{"lab-dhcp"};
  [[nodiscard]] const std::string& server_if() const { return link.a_name(); }
  [[nodiscard]] const std::string& client_if() const { return link.b_name(); }
};

std::map<std::string, std::string> parse_env(const std::string& text) {
  std::map<std::string, std::string> env;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find('=');
    if (eq != std::string::npos)
      env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

// busybox udhcpc once (-q): the environment its script saw on "bound", empty when it got no
// lease. `extra` adds options (-V vendor class, -x code:hex, -B broadcast).
std::map<std::string, std::string> udhcpc(const NetNs& ns, const std::string& interface,
                                          const TempDir& dir,
                                          const std::vector<std::string>& extra = {}) {
  const auto env_file = dir / "udhcpc.env";
  std::filesystem::remove(env_file);
  const auto script = dir.write(
      "udhcpc.sh", "#!/bin/sh\n[ \"$1\" = bound ] && env > " + env_file.string() + "\nexit 0\n");
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  std::vector<std::string> argv = {"ip", "netns", "exec", ns.name(), "busybox", "udhcpc", "-f",
                                   "-q", "-n",    "-i",   interface, "-s",      script,   "-t",
                                   "4",  "-T",    "1",    "-A",      "1"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto r = run(argv, 30s);
  auto env = parse_env(read_file(env_file));
  if (env.empty())
    ADD_FAILURE() << "udhcpc got no lease:\n" << r.output;
  return env;
}

// Counts DHCP replies reaching the client's interface, by destination.
struct ReplyCounter {
  ReplyCounter(const NetNs& ns, const std::string& interface) : ns_(ns) {
    ns.exec(
        "nft -f - <<'EOF'\ntable netdev dhcpcount {\n chain in { type filter hook ingress "
        "device \"" +
        interface +
        "\" priority 0;\n  udp dport 68 ip daddr 255.255.255.255 counter\n"
        "  udp dport 68 ip daddr != 255.255.255.255 counter\n }\n}\nEOF");
  }
  // {broadcast, unicast}
  [[nodiscard]] std::pair<int, int> counts() const {
    auto r =
        run({"ip", "netns", "exec", ns_.name(), "nft", "list", "table", "netdev", "dhcpcount"});
    std::vector<int> n;
    const std::regex re("packets ([0-9]+)");
    for (auto it = std::sregex_iterator(r.output.begin(), r.output.end(), re);
         it != std::sregex_iterator(); ++it)
      n.push_back(std::stoi((*it)[1]));
    return n.size() == 2 ? std::pair{n[0], n[1]} : std::pair{-1, -1};
  }
  const NetNs& ns_;
};

TEST(DhcpFull, DhclientDoraRenewRelease) {
  LAB_REQUIRE_ROOT();
  LAB_REQUIRE_PROGRAM("dhclient");
  Segment seg;
  auto lab = start_lab(seg.server, seg.dir, full_config(seg.server_if(), "10s"));
  const auto calls = seg.dir / "dhclient.calls";
  const auto script = seg.dir.write(
      "dhclient.sh",
      "#!/bin/sh\necho \"$reason $new_ip_address $new_subnet_mask $new_routers "
      "$new_dhcp_lease_time\" >> " +
          calls.string() +
          "\ncase \"$reason\" in\n"
          "BOUND|RENEW|REBIND|REBOOT) ip addr replace \"$new_ip_address/$new_subnet_mask\" dev "
          "\"$interface\" ;;\n"
          "EXPIRE|FAIL|RELEASE|STOP) [ -n \"$old_ip_address\" ] && ip addr del "
          "\"$old_ip_address/$old_subnet_mask\" dev \"$interface\" ;;\nesac\nexit 0\n");
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  const std::vector<std::string> common = {"-sf", script.string(),
                                           "-lf", (seg.dir / "dhclient.leases").string(),
                                           "-pf", (seg.dir / "dhclient.pid").string(),
                                           "-cf", "/dev/null"};
  std::vector<std::string> argv = {"dhclient", "-d", "-v"};
  argv.insert(argv.end(), common.begin(), common.end());
  argv.push_back(seg.client_if());
  auto client =
      ChildProcess::start({.argv = argv, .env = {}, .netns = seg.client.name(), .log = {}});

  ASSERT_TRUE(wait_until([&] { return read_file(calls).find("BOUND") != std::string::npos; }, 20s))
      << client.output() << lab.output();
  EXPECT_NE(read_file(calls).find("BOUND 10.77.0.100 255.255.255.0 10.77.0.1 10"),
            std::string::npos)
      << read_file(calls);
  // T1 is half the lease: dhclient renews by unicast after ~5 s and gets an ACK.
  ASSERT_TRUE(wait_until([&] { return read_file(calls).find("RENEW") != std::string::npos; }, 20s))
      << client.output();
  EXPECT_NE(read_file(calls).find("RENEW 10.77.0.100"), std::string::npos);
  EXPECT_NE(client.output().find("DHCPREQUEST for 10.77.0.100 on " + seg.client_if() + " to " +
                                 kServerIp + " port 67"),
            std::string::npos)
      << client.output();
  // Each ACK (the first and the renewal) was made durable: two bound records at least.
  const auto bound_before = journal_lines(seg.dir);
  EXPECT_GE(std::count_if(bound_before.begin(), bound_before.end(),
                          [](const std::string& l) { return l.starts_with("L 10.77.0.100 b "); }),
            2)
      << read_file(seg.dir / "data" / "dhcp-leases");

  // dhclient -r stops the running client and sends a RELEASE.
  std::vector<std::string> release = {"ip",       "netns", "exec", seg.client.name(),
                                      "dhclient", "-r",    "-v"};
  release.insert(release.end(), common.begin(), common.end());
  release.push_back(seg.client_if());
  auto r = run(release, 20s);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("DHCPRELEASE of 10.77.0.100"), std::string::npos) << r.output;
  EXPECT_TRUE(wait_until(
      [&] {
        const auto lines = journal_lines(seg.dir);
        return !lines.empty() && lines.back().starts_with("L 10.77.0.100 r ");
      },
      5s))
      << read_file(seg.dir / "data" / "dhcp-leases");
  EXPECT_EQ(client.wait(5s), 128 + SIGTERM) << "dhclient -r stops the running client";
  EXPECT_TRUE(lab.running()) << lab.output();
}

TEST(DhcpFull, UdhcpcGetsUnicastRepliesUnlessItAsksForBroadcast) {
  LAB_REQUIRE_ROOT();
  LAB_REQUIRE_PROGRAM("busybox");
  LAB_REQUIRE_PROGRAM("nft");
  Segment seg;
  auto lab = start_lab(seg.server, seg.dir, full_config(seg.server_if()));
  ReplyCounter counter(seg.client, seg.client_if());

  auto env = udhcpc(seg.client, seg.client_if(), seg.dir);
  EXPECT_EQ(env["ip"], "10.77.0.100");
  EXPECT_EQ(env["subnet"], "255.255.255.0");
  EXPECT_EQ(env["router"], "10.77.0.1");
  EXPECT_EQ(env["dns"], "10.77.0.53");
  EXPECT_EQ(env["serverid"], kServerIp);
  EXPECT_EQ(env["lease"], "3600");
  EXPECT_EQ(env.count("boot_file"), 0u) << "an ordinary client gets no boot file";
  // No broadcast flag, no address yet: OFFER and ACK unicast to yiaddr (RFC 2131 §4.1).
  EXPECT_EQ(counter.counts(), std::make_pair(0, 2));

  env = udhcpc(seg.client, seg.client_if(), seg.dir, {"-B"});
  EXPECT_EQ(env["ip"], "10.77.0.100") << "the same client keeps its address";
  EXPECT_EQ(counter.counts(), std::make_pair(2, 2));
  EXPECT_TRUE(lab.running());
}

TEST(DhcpFull, ReservationByMacWithHostname) {
  LAB_REQUIRE_ROOT();
  LAB_REQUIRE_PROGRAM("busybox");
  Segment seg;
  const std::string reservation =
      "\n[[dhcp.reservations]]\nmac = \"52:54:00:AA:BB:01\"\nip = \"10.77.0.50\"\n"
      "hostname = \"node-a\"\n";
  auto lab = start_lab(seg.server, seg.dir, full_config(seg.server_if()) + reservation);
  seg.client.ip("link set dev " + seg.client_if() + " address 52:54:00:aa:bb:01");
  auto env = udhcpc(seg.client, seg.client_if(), seg.dir);
  EXPECT_EQ(env["ip"], "10.77.0.50");
  EXPECT_EQ(env["hostname"], "node-a");
  // Another MAC gets an address from the pool, never the reserved one.
  seg.client.ip("link set dev " + seg.client_if() + " address 52:54:00:aa:bb:02");
  env = udhcpc(seg.client, seg.client_if(), seg.dir);
  EXPECT_EQ(env["ip"], "10.77.0.100");
  EXPECT_EQ(env.count("hostname"), 0u);
}

TEST(DhcpFull, BootFileByArchitectureAndUserClass) {
  LAB_REQUIRE_ROOT();
  LAB_REQUIRE_PROGRAM("busybox");
  Segment seg;
  auto lab = start_lab(seg.server, seg.dir, full_config(seg.server_if()));
  struct Case {
    const char* name;
    std::vector<std::string> args;
    const char* file;
    const char* vendor;
  };
  const std::vector<Case> cases = {
      {"BIOS",
       {"-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000"},
       "undionly.kpxe",
       "PXEClient"},
      {"x86-64 UEFI (7)",
       {"-V", "PXEClient:Arch:00007:UNDI:003016", "-x", "0x5d:0007"},
       "ipxe.efi",
       "PXEClient"},
      {"x86-64 UEFI (9)",
       {"-V", "PXEClient:Arch:00009:UNDI:003016", "-x", "0x5d:0009"},
       "ipxe.efi",
       "PXEClient"},
      {"ARM64 UEFI",
       {"-V", "PXEClient:Arch:00011:UNDI:003000", "-x", "0x5d:000b"},
       "ipxe-arm64.efi",
       "PXEClient"},
      {"UEFI HTTP boot",
       {"-V", "HTTPClient:Arch:00016:UNDI:003001", "-x", "0x5d:0010"},
       "http://10.77.0.1:8080/boot/ipxe.efi",
       "HTTPClient"},
      {"arch only in the vendor class",
       {"-V", "PXEClient:Arch:00007:UNDI:003016"},
       "ipxe.efi",
       "PXEClient"},
      {"iPXE",
       {"-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000", "-x", "0x4d:69505845"},
       "http://10.77.0.1:8080/boot/boot.ipxe",
       "PXEClient"},
  };
  for (const auto& c : cases) {
    auto env = udhcpc(seg.client, seg.client_if(), seg.dir, c.args);
    EXPECT_EQ(env["bootfile"], c.file) << c.name;  // option 67
    EXPECT_EQ(env["vendor"], c.vendor) << c.name;  // option 60 echoed
    const bool tftp = !std::string_view(c.file).starts_with("http://");
    EXPECT_EQ(env["boot_file"], c.file) << c.name;              // the BOOTP file field
    EXPECT_EQ(env["siaddr"], tftp ? kServerIp : "") << c.name;  // TFTP next server
    EXPECT_EQ(env["ip"], "10.77.0.100") << c.name;
  }
  EXPECT_TRUE(lab.running());
}

TEST(DhcpFull, PerfdhcpShortRunWithoutDrops) {
  LAB_REQUIRE_ROOT();
  LAB_REQUIRE_PROGRAM("perfdhcp");
  Segment seg;
  seg.client.ip("addr add 10.77.0.2/24 dev " + seg.client_if());
  // perfdhcp acts as a relay (giaddr = its address, replies to port 67): 400 distinct clients.
  const std::string config =
      "[dhcp]\nenabled = true\nmode = \"full\"\nconflict_probe = false\ninterface = \"" +
      seg.server_if() +
      "\"\n[[dhcp.subnets]]\nsubnet = \"10.77.0.0/24\"\nrange_start = \"10.77.0.10\"\n"
      "range_end = \"10.77.0.250\"\n"
      "[[dhcp.subnets]]\nsubnet = \"10.80.0.0/16\"\nrange_start = \"10.80.1.0\"\n"
      "range_end = \"10.80.9.255\"\n";
  auto lab = start_lab(seg.server, seg.dir, config);
  (void)lab;
  // The relay's subnet (10.77.0.0/24) has 241 addresses: 200 clients fit.
  auto r = run({"ip", "netns", "exec", seg.client.name(), "perfdhcp", "-4", "-l", seg.client_if(),
                "-r", "100", "-R", "200", "-p", "3", kServerIp},
               30s);
  ASSERT_NE(r.exit_code, -1) << r.output;
  const std::regex re(
      "Statistics for: (DISCOVER-OFFER|REQUEST-ACK)\\*+\\s+sent packets: ([0-9]+)\\s+received "
      "packets: ([0-9]+)\\s+drops: ([0-9]+)");
  int exchanges = 0;
  for (auto it = std::sregex_iterator(r.output.begin(), r.output.end(), re);
       it != std::sregex_iterator(); ++it) {
    ++exchanges;
    const int sent = std::stoi((*it)[2]);
    const int received = std::stoi((*it)[3]);
    EXPECT_GE(sent, 200) << (*it)[1];
    EXPECT_GE(received, sent * 99 / 100) << (*it)[1] << "\n" << r.output;
  }
  EXPECT_EQ(exchanges, 2) << r.output;
  EXPECT_NE(r.output.find("non unique addresses: 0"), std::string::npos);
  EXPECT_GE(journal_lines(seg.dir).size(), 200u);
}

}  // namespace
