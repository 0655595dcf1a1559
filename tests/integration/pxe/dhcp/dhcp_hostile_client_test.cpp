// A client id (option 61) as long as one option can carry, sent by a real client (busybox
// udhcpc), against `lab serve`: the clients that take leases after it keep them across a
// restart, and no address is handed out twice. Its journal record once did not fit the
// journal's line limit, so the loader stopped there and the start-up compaction dropped every
// lease recorded after it.
#include "tests/integration/pxe/dhcp/dhcp_fixture.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

namespace {

using namespace lab::tests;
using namespace lab::tests::dhcp;

// busybox udhcpc once (-q) with option 61 = `client_id_hex`, optionally asking for `address`
// (-r): the address it was given, or "" when it got no lease.
std::string udhcpc_lease(const NetNs& ns, const std::string& interface, const TempDir& dir,
                         const std::string& client_id_hex, const std::string& address = {}) {
  const auto ip_file = dir / "udhcpc.ip";
  std::filesystem::remove(ip_file);
  const auto script = dir.write("udhcpc.sh", "#!/bin/sh\n[ \"$1\" = bound ] && echo \"$ip\" > " +
                                                 ip_file.string() + "\nexit 0\n");
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  std::vector<std::string> argv = {
      "ip", "netns", "exec", ns.name(), "busybox", "udhcpc", "-f",
      "-q", "-n",    "-i",   interface, "-s",      script,   "-t",
      "4",  "-T",    "1",    "-A",      "1",       "-x",     "0x3d:" + client_id_hex};
  if (!address.empty()) {
    argv.emplace_back("-r");
    argv.push_back(address);
  }
  (void)run(argv, 30s);
  std::string ip = read_file(ip_file);
  while (!ip.empty() && (ip.back() == '\n' || ip.back() == ' '))
    ip.pop_back();
  return ip;
}

// An RFC 4361-shaped short client id: hardware type 1 and a made-up MAC per client.
std::string short_id(int n) {
  std::ostringstream out;
  out << "01020000" << std::hex << std::setw(4) << std::setfill('0') << n;
  return out.str();
}

// The newest journal record of each address: its state letter.
std::map<std::string, std::string> journal_states(const TempDir& dir) {
  std::map<std::string, std::string> out;
  for (const auto& line : journal_lines(dir)) {
    std::istringstream in(line);
    std::string tag, ip, state;
    if (in >> tag >> ip >> state && tag == "L")
      out[ip] = state;
  }
  return out;
}

TEST(DhcpHostileClient, OverlongClientIdCostsNoLeaseAcrossARestart) {
  LAB_REQUIRE_ROOT();
  LAB_REQUIRE_PROGRAM("busybox");
  NetNs server("dhh");
  NetNs client("dhhc");
  Veth link(server, "10.77.0.1/24", client, "");
  TempDir dir("lab-dhcp-hostile");
  const std::string config =
      "[dhcp]\nenabled = true\nmode = \"full\"\nconflict_probe = false\ninterface = \"" +
      link.a_name() +
      "\"\n[[dhcp.subnets]]\nsubnet = \"10.77.0.0/24\"\nrange_start = \"10.77.0.100\"\n"
      "range_end = \"10.77.0.199\"\nlease_time = \"1h\"\n";
  auto lab = start_lab(server, dir, config);

  // 255 bytes: the longest a single option can carry, 510 hex digits in a journal record.
  std::string hostile;
  for (int i = 0; i < 255; ++i)
    hostile += "ab";
  const std::string hostile_ip = udhcpc_lease(client, link.b_name(), dir, hostile);
  EXPECT_EQ(hostile_ip, "") << "a client id longer than any RFC 4361 one is refused\n"
                            << lab.output();

  constexpr int kClients = 5;
  std::map<int, std::string> earlier;  // client number → address
  std::set<std::string> taken;
  if (!hostile_ip.empty())
    taken.insert(hostile_ip);
  for (int n = 1; n <= kClients; ++n) {
    const auto ip = udhcpc_lease(client, link.b_name(), dir, short_id(n));
    ASSERT_FALSE(ip.empty()) << "client " << n << " got no lease\n" << lab.output();
    EXPECT_TRUE(taken.insert(ip).second) << ip << " handed out twice";
    earlier[n] = ip;
  }

  ASSERT_EQ(lab.stop(10s), 0) << lab.output();
  lab = start_lab(server, dir, config, "lab2.toml");

  // The restarted server recovered and compacted the journal: every lease is still there.
  const auto held = journal_states(dir);
  for (const auto& [n, ip] : earlier) {
    const auto it = held.find(ip);
    EXPECT_TRUE(it != held.end() && it->second == "b")
        << "client " << n << " held " << ip << "; the journal after the restart "
        << (it == held.end() ? "lost it" : "says " + it->second);
  }

  // New clients get addresses nobody holds.
  for (int n = kClients + 1; n <= 2 * kClients; ++n) {
    const auto ip = udhcpc_lease(client, link.b_name(), dir, short_id(n));
    ASSERT_FALSE(ip.empty()) << "client " << n << " got no lease\n" << lab.output();
    EXPECT_TRUE(taken.insert(ip).second)
        << ip << " handed out again after the restart, to client " << n;
  }
  // And the earlier clients keep theirs.
  for (const auto& [n, ip] : earlier)
    EXPECT_EQ(udhcpc_lease(client, link.b_name(), dir, short_id(n), ip), ip) << "client " << n;
  EXPECT_TRUE(lab.running()) << lab.output();
}

}  // namespace
