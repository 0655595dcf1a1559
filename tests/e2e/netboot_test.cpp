// A machine with no OS network-boots from `lab serve` and ends up in the registry: QEMU with
// SeaBIOS + iPXE ROM and with OVMF's own PXE client, DHCP (full and proxy beside dnsmasq) →
// TFTP → per-machine iPXE script → kernel + initramfs → `labd boot` → joined. The flight
// recorder must tell the whole story, and the boot token must not work a second time.
#include "tests/e2e/netboot.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>

namespace {

using namespace lab::tests;
using namespace lab::tests::e2e;
namespace json = boost::json;

#define E2E_REQUIRE(firmware)                               \
  do {                                                      \
    const std::string why = missing_prerequisite(firmware); \
    if (!why.empty()) {                                     \
      GTEST_SKIP() << why;                                  \
    }                                                       \
  } while (false)

constexpr std::chrono::seconds kToInit{180};  // TCG on a loaded 2-core machine: ~15–30 s idle
constexpr std::chrono::seconds kInitToNetwork{60};
constexpr std::chrono::seconds kNetworkToJoined{90};

std::optional<json::value> parse_json(const std::string& text) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec)
    return std::nullopt;
  return v;
}

std::string str(const json::value* v) {
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

// Prints and records the boot times (seconds from QEMU's start) of one boot.
void report_times(const Vm& vm, std::string_view name, const std::string& accel) {
  auto fmt_s = [](std::optional<double> s) {
    return s ? fmt::format("{:.1f} s", *s) : std::string("-");
  };
  const std::string line = fmt::format(
      "boot times {} ({}, labd {}): /init {}, network up {}, labd joining {}, joined {}", name,
      accel, labd_under_test().string(), fmt_s(vm.seen(kInitStarted)), fmt_s(vm.seen(kNetworkUp)),
      fmt_s(vm.seen(kJoining)), fmt_s(vm.seen(kJoined)));
  std::cout << line << "\n";
  for (const auto& [key, marker] :
       {std::pair{"seconds_to_init", kInitStarted}, std::pair{"seconds_to_network", kNetworkUp},
        std::pair{"seconds_to_joining", kJoining}, std::pair{"seconds_to_joined", kJoined}}) {
    if (auto s = vm.seen(marker))
      ::testing::Test::RecordProperty(fmt::format("{}_{}", name, key), fmt::format("{:.1f}", *s));
  }
  std::ofstream(build_dir() / "tests" / "e2e" / "boot-times.txt", std::ios::app) << line << "\n";
}

// Boots until labd has joined; false (with a failure or skip recorded) when it did not get
// there. Without a `labd boot` the boot is checked as far as the agent OS's network.
bool boot_until_joined(const BootLab& lab, Vm& vm, std::string_view name,
                       const std::string& accel) {
  auto story = [&] {
    return vm.tail() + "\n--- lab machine timeline " + vm.mac() + ":\n" +
           lab.lab({"machine", "timeline", vm.mac()}).output;
  };
  const auto init = vm.wait_for(kInitStarted, kToInit);
  if (!init) {
    ADD_FAILURE() << name << ": the agent OS's /init never started\n" << story();
    return false;
  }
  const auto net = vm.wait_for(kNetworkUp, kInitToNetwork);
  if (!net) {
    ADD_FAILURE() << name << ": the agent OS got no network\n" << story();
    return false;
  }
  if (!labd_has_boot_command()) {
    report_times(vm, name, accel);
    return false;
  }
  const auto joined = vm.wait_for(kJoined, kNetworkToJoined);
  report_times(vm, name, accel);
  if (!joined) {
    ADD_FAILURE() << name << ": labd boot did not join\n" << story();
    return false;
  }
  return true;
}

#define BOOT_UNTIL_JOINED(lab, vm, name, accel)                                                  \
  do {                                                                                           \
    if (!boot_until_joined(lab, vm, name, accel)) {                                              \
      if (!::testing::Test::HasFailure())                                                        \
        GTEST_SKIP() << "this labd has no 'boot' command: checked up to the agent OS's network"; \
      return;                                                                                    \
    }                                                                                            \
  } while (false)

// The node the registry holds for `mac`, from `lab node list --output json`.
std::optional<json::object> node_with_mac(const BootLab& lab, const std::string& mac) {
  auto r = lab.lab({"node", "list", "--output", "json"});
  if (r.exit_code != 0)
    return std::nullopt;
  auto v = parse_json(r.output);
  if (!v || !v->is_array())
    return std::nullopt;
  for (const auto& n : v->as_array()) {
    if (!n.is_object())
      continue;
    if (const auto* macs = n.as_object().if_contains("macs"); macs && macs->is_array()) {
      for (const auto& m : macs->as_array()) {
        if (m.is_string() && m.as_string() == mac)
          return n.as_object();
      }
    }
  }
  return std::nullopt;
}

// The facts QEMU gives the machine: its MAC, the VM's memory less what the firmware and kernel
// keep, two CPUs.
void expect_qemu_facts(const json::object& node, const std::string& mac) {
  const auto* facts = node.if_contains("facts");
  ASSERT_TRUE(facts && facts->is_object()) << json::serialize(node);
  const auto& f = facts->as_object();
  const auto* memory = f.if_contains("memory_bytes");
  ASSERT_TRUE(memory && memory->is_number()) << json::serialize(f);
  const auto bytes = memory->to_number<double>();
  const double vm = kVmMemoryMib * 1024.0 * 1024.0;
  EXPECT_GT(bytes, 0.75 * vm) << json::serialize(f);
  EXPECT_LE(bytes, vm) << json::serialize(f);
  const auto* cpu = f.if_contains("cpu");
  ASSERT_TRUE(cpu && cpu->is_object()) << json::serialize(f);
  const auto* count = cpu->as_object().if_contains("count");
  ASSERT_TRUE(count && count->is_number()) << json::serialize(f);
  EXPECT_EQ(count->to_number<int>(), 2) << json::serialize(f);
  bool nic = false;
  if (const auto* nics = f.if_contains("nics"); nics && nics->is_array()) {
    for (const auto& n : nics->as_array())
      nic = nic || (n.is_object() && str(n.as_object().if_contains("mac")) == mac);
  }
  EXPECT_TRUE(nic) << "no NIC with " << mac << " in " << json::serialize(f);
}

struct TimelineEvent {
  std::string kind;
  std::string text;  // the whole event as JSON, to search details in
};

std::vector<TimelineEvent> timeline(const BootLab& lab, const std::string& mac) {
  std::vector<TimelineEvent> out;
  auto r = lab.lab({"machine", "timeline", mac, "--output", "json"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  auto v = parse_json(r.output);
  const json::array* events = nullptr;
  if (v && v->is_array())
    events = &v->as_array();
  else if (v && v->is_object() && v->as_object().if_contains("events") &&
           v->as_object().at("events").is_array())
    events = &v->as_object().at("events").as_array();
  EXPECT_NE(events, nullptr) << r.output;
  if (events == nullptr)
    return out;
  for (const auto& e : *events) {
    if (e.is_object())
      out.push_back({str(e.as_object().if_contains("kind")), json::serialize(e)});
  }
  return out;
}

// The flight recorder holds the boot from the first DHCP answer to labd's join, in order.
void expect_whole_timeline(const BootLab& lab, const std::string& mac, Firmware firmware,
                           bool proxy) {
  const auto events = timeline(lab, mac);
  std::string all;
  for (const auto& e : events)
    all += e.text + "\n";
  // The first of `kind` at or after `from` whose JSON holds `needle`; events.size() if none.
  auto find = [&](std::size_t from, std::string_view kind, std::string_view needle = {}) {
    for (std::size_t i = from; i < events.size(); ++i) {
      if (events[i].kind == kind && events[i].text.find(needle) != std::string::npos)
        return i;
    }
    return events.size();
  };
  // QEMU's BIOS network-boot ROM is iPXE itself; OVMF's PXE client says UEFI x64 and the
  // ipxe.efi it fetches then asks again as iPXE.
  const std::string arch = firmware == Firmware::uefi ? R"("arch":"uefi-x64")" : R"("arch":"ipxe")";
  std::size_t at = 0;
  if (proxy) {
    at = find(0, "proxy-offer", arch);
    EXPECT_LT(at, events.size()) << "no proxy offer\n" << all;
  } else {
    at = find(0, "dhcp-offer", arch);
    EXPECT_LT(at, events.size()) << "no DHCP offer naming " << arch << "\n" << all;
    at = find(at, "dhcp-ack", arch);
    EXPECT_LT(at, events.size()) << "no DHCP ack after the offer\n" << all;
  }
  if (firmware == Firmware::uefi) {
    at = find(at, "tftp-done", "ipxe.efi");
    EXPECT_LT(at, events.size()) << "OVMF's PXE client never fetched ipxe.efi\n" << all;
  }
  at = find(at, "script-render");
  EXPECT_LT(at, events.size()) << "no iPXE script rendered\n" << all;
  const auto kernel = find(at, "http-fetch", "agent/vmlinuz");
  EXPECT_LT(kernel, events.size()) << "kernel not fetched after the script\n" << all;
  const auto initrd = find(at, "http-fetch", "agent/initrd.img");
  EXPECT_LT(initrd, events.size()) << "initrd not fetched after the script\n" << all;
  EXPECT_LT(find(std::max(kernel, initrd), "agent-join"), events.size())
      << "no agent join after the boot files\n"
      << all;
}

std::string join_string_on(const std::string& console) {
  static const std::regex kJoinWord(R"(lab\.join=(\S+))");
  std::smatch m;
  return std::regex_search(console, m, kJoinWord) ? m[1].str() : std::string();
}

class NetBoot : public ::testing::Test {
 protected:
  static std::string mac(int n) { return fmt::format("52:54:00:e2:e0:{:02x}", n); }
};

// SeaBIOS + QEMU's iPXE ROM, lab serve handing out the address. The machine is unknown, so it
// waits as discovered until the operator accepts it. Its boot token then is worth nothing: not
// to another join, and the script for its MAC is refused to any other address.
TEST_F(NetBoot, BiosMachineJoinsAsDiscoveredAndItsTokenIsSpent) {
  E2E_REQUIRE(Firmware::bios);
  const std::string accel = accelerator();
  BootLab lab({.name = "bios", .dhcp_mode = "full", .auto_accept = ""});
  Vm vm(lab, Firmware::bios, mac(1), accel);
  BOOT_UNTIL_JOINED(lab, vm, "bios", accel);

  auto node = node_with_mac(lab, vm.mac());
  ASSERT_TRUE(node) << lab.lab({"node", "list", "--output", "json"}).output;
  EXPECT_EQ(str(node->if_contains("state")), "discovered") << json::serialize(*node);
  expect_qemu_facts(*node, vm.mac());
  EXPECT_TRUE(vm.wait_for("labd boot: waiting for the operator", 30s)) << vm.tail();
  const std::string name = str(node->if_contains("name"));
  auto accepted = lab.lab({"node", "accept", name});
  EXPECT_EQ(accepted.exit_code, 0) << accepted.output;
  EXPECT_TRUE(vm.wait_for(kReady, 60s)) << vm.tail();
  expect_whole_timeline(lab, vm.mac(), Firmware::bios, /*proxy=*/false);

  // The token on the kernel command line, replayed by someone else: refused, and the audit
  // trail says why — it was used, whatever else is wrong with the caller.
  const std::string join = join_string_on(vm.console());
  ASSERT_FALSE(join.empty()) << vm.tail();
  auto replay = lab.sh_in(fmt::format(
      "'{}' --data-dir '{}' --socket '{}' --set key_protection=file join --timeout 10 '{}'",
      labd_binary().string(), (lab.dir() / "replay").string(), (lab.dir() / "replay.sock").string(),
      join));
  EXPECT_NE(replay.exit_code, 0) << replay.output;
  EXPECT_NE(replay.output.find("invalid token"), std::string::npos) << replay.output;
  // Refusals are audited as one row per caller and window (1 s here).
  CommandResult audit;
  EXPECT_TRUE(wait_until(
      [&] {
        audit = lab.lab({"audit", "list", "--output", "json", "--limit", "1000"});
        return audit.output.find("already used") != std::string::npos;
      },
      10s))
      << audit.output;

  // The script for this MAC, asked from another address on the segment: 403.
  lab.ns().ip("addr add " + lab.address(77) + "/24 dev br0");
  auto other = lab.sh_in("curl -s -o /dev/null -w '%{http_code}' --interface " + lab.address(77) +
                         " " + lab.http_url("/boot/" + vm.mac() + ".ipxe"));
  EXPECT_EQ(other.output, "403") << other.output;
  EXPECT_NE(lab.lab({"machine", "timeline", vm.mac()}).output.find("script-refused"),
            std::string::npos);
}

// OVMF without the NIC's ROM: its own PXE client fetches ipxe.efi over TFTP, which then asks
// for the script. An auto-accept selector enrols the machine without the operator.
TEST_F(NetBoot, UefiMachineBootsThroughOvmfPxeAndIsAutoAccepted) {
  E2E_REQUIRE(Firmware::uefi);
  const std::string accel = accelerator();
  BootLab lab({.name = "uefi", .dhcp_mode = "full", .auto_accept = "!lab.test/held"});
  Vm vm(lab, Firmware::uefi, mac(2), accel);
  BOOT_UNTIL_JOINED(lab, vm, "uefi", accel);

  auto node = node_with_mac(lab, vm.mac());
  ASSERT_TRUE(node) << lab.lab({"node", "list", "--output", "json"}).output;
  expect_qemu_facts(*node, vm.mac());
  EXPECT_TRUE(vm.wait_for(kReady, 60s)) << vm.tail();
  EXPECT_NE(vm.console().find("state=enrolled"), std::string::npos) << vm.tail();
  expect_whole_timeline(lab, vm.mac(), Firmware::uefi, /*proxy=*/false);
}

// dnsmasq owns the addresses; lab serve only tells PXE clients what to boot.
TEST_F(NetBoot, ProxyModeBesideDnsmasqStillBootsAndJoins) {
  E2E_REQUIRE(Firmware::bios);
  const std::string accel = accelerator();
  BootLab lab({.name = "bios-proxy", .dhcp_mode = "proxy", .auto_accept = "!lab.test/held"});
  Vm vm(lab, Firmware::bios, mac(3), accel);
  BOOT_UNTIL_JOINED(lab, vm, "bios-proxy", accel);

  auto node = node_with_mac(lab, vm.mac());
  ASSERT_TRUE(node) << lab.lab({"node", "list", "--output", "json"}).output;
  expect_qemu_facts(*node, vm.mac());
  EXPECT_NE(lab.dnsmasq_output().find("DHCPACK"), std::string::npos) << lab.dnsmasq_output();
  expect_whole_timeline(lab, vm.mac(), Firmware::bios, /*proxy=*/true);
}

}  // namespace
