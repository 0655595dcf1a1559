// The DHCP server of `lab serve` behind a relay namespace, in proxy mode beside dnsmasq,
// across kill -9, and under malformed packets on its real socket.
#include "tests/integration/pxe/dhcp/dhcp_fixture.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <random>
#include <set>
#include <sstream>

namespace {

using namespace lab::tests;
using namespace lab::tests::dhcp;
namespace opt = wire::opt;

std::map<std::string, std::string> udhcpc_env(const NetNs& ns, const std::string& interface,
                                              const TempDir& dir) {
  const auto env_file = dir / "udhcpc.env";
  std::filesystem::remove(env_file);
  const auto script = dir.write(
      "udhcpc.sh", "#!/bin/sh\n[ \"$1\" = bound ] && env > " + env_file.string() + "\nexit 0\n");
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  auto r = run({"ip", "netns", "exec", ns.name(), "busybox", "udhcpc", "-f", "-q", "-n", "-i",
                interface, "-s", script.string(), "-t", "6", "-T", "1", "-A", "1"},
               30s);
  std::map<std::string, std::string> env;
  std::istringstream in(read_file(env_file));
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find('=');
    if (eq != std::string::npos)
      env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  if (env.empty())
    ADD_FAILURE() << "udhcpc got no lease:\n" << r.output;
  return env;
}

std::array<std::uint8_t, 6> mac_of(std::uint32_t n) {
  return {0x02,
          0x00,
          static_cast<std::uint8_t>(n >> 24),
          static_cast<std::uint8_t>(n >> 16),
          static_cast<std::uint8_t>(n >> 8),
          static_cast<std::uint8_t>(n)};
}

TEST(DhcpRelay, RelayNamespaceForwardsWithGiaddrAndTheRelaysPoolIsUsed) {
  LAB_REQUIRE_ROOT();
  LAB_REQUIRE_PROGRAM("busybox");
  // client ns ── 10.78.0.0/24 ── relay ns ── 10.77.0.0/24 ── server ns
  NetNs server("dhs");
  NetNs relay_ns("dhr");
  NetNs client("dhc");
  Veth upstream(server, "10.77.0.1/24", relay_ns, "10.77.0.2/24");
  Veth downstream(relay_ns, "10.78.0.1/24", client, "");
  server.ip("route add 10.78.0.0/24 via 10.77.0.2");
  TempDir dir("lab-dhcp");
  const std::string config =
      "[dhcp]\nenabled = true\nmode = \"full\"\nconflict_probe = false\ninterface = \"" +
      upstream.a_name() +
      "\"\n[[dhcp.subnets]]\nsubnet = \"10.77.0.0/24\"\nrange_start = \"10.77.0.100\"\n"
      "range_end = \"10.77.0.199\"\n"
      "[[dhcp.subnets]]\nsubnet = \"10.78.0.0/24\"\nrange_start = \"10.78.0.50\"\n"
      "range_end = \"10.78.0.60\"\nrouter = \"10.78.0.1\"\n";
  auto lab = start_lab(server, dir, config);
  Relay relay(relay_ns, downstream.a_name(), "10.78.0.1", "10.77.0.1");

  auto env = udhcpc_env(client, downstream.b_name(), dir);
  EXPECT_EQ(env["ip"], "10.78.0.50") << "the pool of the relay's subnet";
  EXPECT_EQ(env["router"], "10.78.0.1");
  EXPECT_EQ(env["subnet"], "255.255.255.0");
  EXPECT_EQ(env["serverid"], "10.77.0.1");
  EXPECT_GE(relay.forwarded_requests.load(), 2);
  EXPECT_GE(relay.forwarded_replies.load(), 2);
  // Every reply carried the relay's option 82 back (RFC 3046 §2.2).
  EXPECT_EQ(relay.replies_with_option82.load(), relay.forwarded_replies.load());
  EXPECT_TRUE(lab.running()) << lab.output();
}

// dnsmasq hands out addresses on a bridge; lab, started with dhcp.mode = "auto", finds it,
// falls back to proxy mode and gives PXE clients their boot file on 67 and 4011.
TEST(DhcpProxy, BesideDnsmasqAutoModeFallsBackToProxy) {
  LAB_REQUIRE_ROOT();
  LAB_REQUIRE_PROGRAM("dnsmasq");
  LAB_REQUIRE_PROGRAM("busybox");
  NetNs lan("dhl");
  NetNs labns("dhs");
  NetNs client("dhc");
  const std::string bridge = unique_ifname("br");
  lan.ip("link add " + bridge + " type bridge");
  lan.ip("addr add 10.79.0.1/24 dev " + bridge);
  lan.ip("link set " + bridge + " up");
  Veth lab_link(labns, "10.79.0.2/24", lan, "");
  Veth client_link(client, "", lan, "");
  lan.ip("link set " + lab_link.b_name() + " master " + bridge);
  lan.ip("link set " + client_link.b_name() + " master " + bridge);
  TempDir dir("lab-dhcp");
  auto dnsmasq = ChildProcess::start(
      {.argv = {"dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
                "--interface=" + bridge, "--bind-interfaces",
                "--dhcp-range=10.79.0.100,10.79.0.150,255.255.255.0,1h",
                "--dhcp-leasefile=" + (dir / "dnsmasq.leases").string(),
                "--pid-file=" + (dir / "dnsmasq.pid").string(), "--user=root", "--log-dhcp"},
       .env = {},
       .netns = lan.name(),
       .log = {}});
  ASSERT_TRUE(wait_until([&] {
    return dnsmasq.output().find("DHCP, IP range") != std::string::npos;
  })) << dnsmasq.output();

  // dnsmasq pings an address before offering it: the probe waits long enough for that.
  auto lab = start_lab(labns, dir,
                       "[dhcp]\nenabled = true\nmode = \"auto\"\ninterface = \"" +
                           lab_link.a_name() + "\"\nprobe_wait = \"4s\"\n");
  EXPECT_NE(lab.output().find("another DHCP server answers on this segment; serving boot "
                              "information only (proxy mode)"),
            std::string::npos)
      << lab.output();
  EXPECT_NE(lab.output().find("other_server=10.79.0.1"), std::string::npos);
  EXPECT_NE(lab.output().find("mode=proxy"), std::string::npos);

  // A PXE ROM's DISCOVER: two offers, the address from dnsmasq, the boot file from lab.
  auto sock = udp_socket_in(client, "", 68, client_link.a_name());
  const auto mac = mac_of(0x5001);
  auto discover = client_message(wire::MessageType::discover, mac, 0x7001);
  discover.flags = wire::Message::kBroadcastFlag;
  discover.set(opt::kVendorClass, std::string_view("PXEClient:Arch:00000:UNDI:002001"));
  discover.set(opt::kClientArch, std::vector<std::uint8_t>{0, 0});
  discover.set(opt::kClientNdi, std::vector<std::uint8_t>{1, 2, 1});
  std::vector<std::uint8_t> uuid(17, 0x11);
  uuid[0] = 0;
  discover.set(opt::kClientUuid, uuid);
  std::optional<wire::Message> address_offer;
  std::optional<wire::Message> boot_offer;
  const auto deadline = std::chrono::steady_clock::now() + 12s;
  while ((!address_offer || !boot_offer) && std::chrono::steady_clock::now() < deadline) {
    send_to(sock.get(), discover, "255.255.255.255", 67);
    auto got = receive(sock.get(), 1500ms, [](const wire::Message& m) {
      return m.op == 2 && m.xid == 0x7001 && type_of(m) == wire::MessageType::offer;
    });
    while (got) {
      auto id = wire::ip_option(got->message, opt::kServerId);
      const std::string server = id && *id ? (*id)->to_string() : "";
      if (server == "10.79.0.1")
        address_offer = got->message;
      else if (server == "10.79.0.2")
        boot_offer = got->message;
      got = receive(sock.get(), 300ms, [](const wire::Message& m) {
        return m.op == 2 && m.xid == 0x7001 && type_of(m) == wire::MessageType::offer;
      });
    }
  }
  ASSERT_TRUE(address_offer) << dnsmasq.output();
  ASSERT_TRUE(boot_offer) << lab.output();
  const wire::Ipv4 leased = address_offer->yiaddr;
  EXPECT_GE(leased, *wire::Ipv4::parse("10.79.0.100"));
  EXPECT_LE(leased, *wire::Ipv4::parse("10.79.0.150"));
  EXPECT_TRUE(boot_offer->yiaddr.is_zero()) << "a proxy never hands out an address";
  EXPECT_EQ(boot_offer->file, "undionly.kpxe");
  EXPECT_EQ(boot_offer->siaddr, *wire::Ipv4::parse("10.79.0.2"));
  EXPECT_EQ(wire::vendor_class(*boot_offer), "PXEClient");
  ASSERT_NE(boot_offer->find(opt::kVendorSpecific), nullptr);
  ASSERT_NE(boot_offer->find(opt::kClientUuid), nullptr);
  EXPECT_EQ(boot_offer->find(opt::kClientUuid)->data, uuid);

  // With the address from dnsmasq, the ROM asks the boot server on port 4011.
  client.ip("addr add " + leased.to_string() + "/24 dev " + client_link.a_name());
  auto bound = udp_socket_in(client, leased.to_string(), 68);
  auto request = client_message(wire::MessageType::request, mac, 0x7002);
  request.ciaddr = leased;
  request.set(opt::kVendorClass, std::string_view("PXEClient:Arch:00007:UNDI:003016"));
  request.set(opt::kClientArch, std::vector<std::uint8_t>{0, 7});
  send_to(bound.get(), request, "10.79.0.2", 4011);
  auto ack =
      receive(bound.get(), 3s, [](const wire::Message& m) { return m.op == 2 && m.xid == 0x7002; });
  ASSERT_TRUE(ack) << lab.output();
  EXPECT_EQ(type_of(ack->message), wire::MessageType::ack);
  EXPECT_EQ(ack->from, "10.79.0.2");
  EXPECT_EQ(ack->message.file, "ipxe.efi");
  EXPECT_TRUE(ack->message.yiaddr.is_zero());
  // iPXE, once loaded, asks again and is sent the script URL, breaking the chainload loop.
  request.xid = 0x7003;
  request.set(opt::kUserClass, std::string_view("iPXE"));
  send_to(bound.get(), request, "10.79.0.2", 4011);
  auto ipxe =
      receive(bound.get(), 3s, [](const wire::Message& m) { return m.op == 2 && m.xid == 0x7003; });
  ASSERT_TRUE(ipxe);
  EXPECT_EQ(ipxe->message.file, "http://10.79.0.2:8080/boot/boot.ipxe");
  client.ip("addr flush dev " + client_link.a_name());

  // An ordinary client gets its address from dnsmasq only; lab stores no lease. The journal
  // holds only where the PXE client was seen (state 'o'), which boot tokens are bound to.
  auto env = udhcpc_env(client, client_link.a_name(), dir);
  EXPECT_EQ(env["serverid"], "10.79.0.1");
  EXPECT_TRUE(env["ip"].starts_with("10.79.0.1")) << env["ip"];
  EXPECT_EQ(env.count("bootfile"), 0u);
  const auto journal = journal_lines(dir);
  ASSERT_FALSE(journal.empty()) << "the PXE client's address is observed";
  for (const auto& line : journal)
    EXPECT_TRUE(line.starts_with("L " + leased.to_string() + " o ")) << line;
  EXPECT_TRUE(lab.running()) << lab.output();
}

// In full mode lab still serves beside another server, but says so at start-up.
TEST(DhcpFull, AnotherServerOnTheSegmentIsReportedAtStartUp) {
  LAB_REQUIRE_ROOT();
  LAB_REQUIRE_PROGRAM("dnsmasq");
  NetNs labns("dhs");
  NetNs other("dho");
  Veth link(labns, "10.79.0.2/24", other, "10.79.0.1/24");
  TempDir dir("lab-dhcp");
  auto dnsmasq = ChildProcess::start(
      {.argv = {"dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
                "--interface=" + link.b_name(), "--bind-interfaces", "--no-ping",
                "--dhcp-range=10.79.0.100,10.79.0.150,255.255.255.0,1h",
                "--dhcp-leasefile=" + (dir / "dnsmasq.leases").string(),
                "--pid-file=" + (dir / "dnsmasq.pid").string(), "--user=root"},
       .env = {},
       .netns = other.name(),
       .log = {}});
  ASSERT_TRUE(wait_until([&] {
    return dnsmasq.output().find("DHCP, IP range") != std::string::npos;
  })) << dnsmasq.output();
  auto lab = start_lab(labns, dir,
                       "[dhcp]\nenabled = true\nmode = \"full\"\ninterface = \"" + link.a_name() +
                           "\"\nprobe_wait = \"2s\"\n[[dhcp.subnets]]\nsubnet = \"10.79.0.0/24\"\n"
                           "range_start = \"10.79.0.200\"\nrange_end = \"10.79.0.210\"\n");
  EXPECT_NE(lab.output().find("another DHCP server answers on this segment; clients may get two "
                              "offers"),
            std::string::npos)
      << lab.output();
  EXPECT_NE(lab.output().find("other_server=10.79.0.1"), std::string::npos);
  EXPECT_NE(lab.output().find("mode=full"), std::string::npos);
}

// A client speaking through a relay address (as perfdhcp does): DISCOVER/REQUEST for many
// MACs at once, each answered or not; returns the ACKed address of every MAC that got one.
std::map<std::uint32_t, wire::Ipv4> dora_burst(int fd, const std::vector<std::uint32_t>& macs,
                                               std::uint32_t xid_base) {
  const auto relay = *wire::Ipv4::parse("10.77.0.2");
  std::map<std::uint32_t, wire::Ipv4> offered;
  for (auto n : macs) {
    auto d = client_message(wire::MessageType::discover, mac_of(n), xid_base + n);
    d.giaddr = relay;
    d.hops = 1;
    try {
      send_to(fd, d, "10.77.0.1", 67);
    } catch (const std::exception&) {
    }
  }
  while (offered.size() < macs.size()) {
    auto got = receive(fd, 500ms, [&](const wire::Message& m) {
      return m.op == 2 && type_of(m) == wire::MessageType::offer;
    });
    if (!got)
      break;
    offered[got->message.xid - xid_base] = got->message.yiaddr;
  }
  for (auto& [n, ip] : offered) {
    auto r = client_message(wire::MessageType::request, mac_of(n), xid_base + n);
    r.giaddr = relay;
    r.hops = 1;
    r.set_ip(opt::kServerId, *wire::Ipv4::parse("10.77.0.1"));
    r.set_ip(opt::kRequestedIp, ip);
    try {
      send_to(fd, r, "10.77.0.1", 67);
    } catch (const std::exception&) {
    }
  }
  std::map<std::uint32_t, wire::Ipv4> acked;
  while (acked.size() < offered.size()) {
    auto got = receive(fd, 500ms, [&](const wire::Message& m) { return m.op == 2; });
    if (!got)
      break;
    if (type_of(got->message) == wire::MessageType::ack)
      acked[got->message.xid - xid_base] = got->message.yiaddr;
  }
  return acked;
}

TEST(DhcpFull, KillNineAndRestartHandsOutNoAddressTwice) {
  LAB_REQUIRE_ROOT();
  NetNs server("dhs");
  NetNs client("dhc");
  Veth link(server, "10.77.0.1/24", client, "10.77.0.2/24");
  TempDir dir("lab-dhcp");
  const std::string config =
      "[dhcp]\nenabled = true\nmode = \"full\"\nconflict_probe = false\ninterface = \"" +
      link.a_name() +
      "\"\n[[dhcp.subnets]]\nsubnet = \"10.77.0.0/22\"\nrange_start = \"10.77.0.10\"\n"
      "range_end = \"10.77.3.250\"\n";
  auto lab = start_lab(server, dir, config);
  auto sock = udp_socket_in(client, "10.77.0.2", 67);

  // Bursts of 32 clients until the server is killed in the middle of one.
  std::map<std::uint32_t, wire::Ipv4> before;
  std::atomic<std::size_t> acked_before{0};
  std::atomic<bool> killed{false};
  std::thread killer([&] {
    wait_until([&] { return acked_before.load() >= 96; }, 30s);
    lab.signal(SIGKILL);
    killed = true;
  });
  std::uint32_t next = 1;
  while (!killed && next < 1000) {
    std::vector<std::uint32_t> macs(32);
    for (auto& n : macs)
      n = next++;
    auto acked = dora_burst(sock.get(), macs, 0x100000);
    before.insert(acked.begin(), acked.end());
    acked_before = before.size();
  }
  killer.join();
  EXPECT_EQ(lab.wait(5s), 128 + SIGKILL);
  ASSERT_GE(before.size(), 96u);

  lab = start_lab(server, dir, config, "lab2.toml");
  EXPECT_NE(lab.output().find("leases="), std::string::npos);
  // Every client from before, and as many new ones, ask again after the restart.
  std::vector<std::uint32_t> all;
  for (std::uint32_t n = 1; n < next + 100; ++n)
    all.push_back(n);
  std::map<std::uint32_t, wire::Ipv4> after;
  for (std::size_t i = 0; i < all.size(); i += 32) {
    std::vector<std::uint32_t> macs(
        all.begin() + static_cast<std::ptrdiff_t>(i),
        all.begin() + static_cast<std::ptrdiff_t>(std::min(all.size(), i + 32)));
    auto acked = dora_burst(sock.get(), macs, 0x200000);
    after.insert(acked.begin(), acked.end());
  }
  EXPECT_GE(after.size(), all.size() * 95 / 100);
  // An address ACKed before the crash still belongs to its client: nobody else got it, and
  // the client itself got it back.
  std::map<std::uint32_t, std::uint32_t> owner;  // ip → mac, over both runs
  for (auto& [n, ip] : before)
    owner[ip.value] = n;
  for (auto& [n, ip] : after) {
    auto it = owner.find(ip.value);
    if (it != owner.end()) {
      EXPECT_EQ(it->second, n) << ip.to_string() << " given to two clients";
    } else {
      owner[ip.value] = n;
    }
    if (auto b = before.find(n); b != before.end()) {
      EXPECT_EQ(b->second, ip) << "client " << n << " lost its address";
    }
  }
  EXPECT_TRUE(lab.running()) << lab.output();
}

std::vector<std::vector<std::uint8_t>> bad_packets() {
  std::vector<std::vector<std::uint8_t>> out;
  for (const auto& e : std::filesystem::directory_iterator(LAB_DHCP_CORPUS_DIR)) {
    const std::string text = read_file(e.path());
    out.emplace_back(text.begin(), text.end());
  }
  std::mt19937 rng(42);
  for (int i = 0; i < 300; ++i) {
    std::vector<std::uint8_t> p(std::uniform_int_distribution<std::size_t>(0, 1400)(rng));
    for (auto& b : p)
      b = static_cast<std::uint8_t>(rng());
    if (i % 2 == 0 && p.size() >= 240) {
      // A valid header and cookie followed by random options: the parser's hard part.
      p[0] = 1;
      p[1] = 1;
      p[2] = 6;
      p[236] = 99;
      p[237] = 130;
      p[238] = 83;
      p[239] = 99;
    }
    out.push_back(std::move(p));
  }
  out.emplace_back();  // empty datagram
  return out;
}

TEST(DhcpFull, MalformedPacketsOverARealSocketCrashNothingAndOthersAreServed) {
  LAB_REQUIRE_ROOT();
  LAB_REQUIRE_PROGRAM("busybox");
  NetNs server("dhs");
  NetNs attacker("dha");
  NetNs client("dhc");
  const std::string bridge = unique_ifname("br");
  server.ip("link add " + bridge + " type bridge");
  server.ip("addr add 10.77.0.1/24 dev " + bridge);
  server.ip("link set " + bridge + " up");
  Veth a(attacker, "10.77.0.9/24", server, "");
  Veth c(client, "", server, "");
  server.ip("link set " + a.b_name() + " master " + bridge);
  server.ip("link set " + c.b_name() + " master " + bridge);
  TempDir dir("lab-dhcp");
  auto lab = start_lab(
      server, dir,
      "[dhcp]\nenabled = true\nmode = \"full\"\nconflict_probe = false\ninterface = \"" + bridge +
          "\"\n[[dhcp.subnets]]\nsubnet = \"10.77.0.0/24\"\nrange_start = \"10.77.0.100\"\n"
          "range_end = \"10.77.0.199\"\n");
  const auto packets = bad_packets();
  auto sock = udp_socket_in(attacker, "10.77.0.9", 68);
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0};
  // Bad packets keep coming, unicast and broadcast, while a real client gets its lease.
  std::thread flood([&] {
    for (int round = 0; round < 20 && !stop; ++round) {
      for (std::size_t i = 0; i < packets.size(); ++i) {
        try {
          send_raw(sock.get(), packets[i], i % 2 == 0 ? "10.77.0.1" : "255.255.255.255", 67);
          ++sent;
        } catch (const std::exception&) {
        }
      }
      std::this_thread::sleep_for(20ms);
    }
  });
  auto env = udhcpc_env(client, c.a_name(), dir);
  stop = true;
  flood.join();
  EXPECT_GT(sent.load(), 300);
  // Random bytes may form a valid DISCOVER now and then: any pool address will do.
  EXPECT_TRUE(env["ip"].starts_with("10.77.0.1")) << env["ip"];
  EXPECT_EQ(env["serverid"], "10.77.0.1");
  EXPECT_TRUE(lab.running()) << lab.output();
  EXPECT_EQ(lab.output().find("level=error"), std::string::npos) << lab.output();
}

}  // namespace
