// Peer sync with real processes on a real (namespaced) network: `lab serve`, five `labd run`
// each in its own namespace, nftables cutting one off from the coordinator. A node cut off
// catches up through its keepers without any keeper holding its secret in a form it can read;
// with the coordinator gone a revoked node is shut out by every peer through gossip alone.
#include "agent/daemon/node.hpp"
#include "tests/integration/agent/peers_fixture.hpp"
#include "tests/support/text.hpp"

#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

namespace {

using namespace lab::tests;
namespace daemon = lab::agent::daemon;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

bool can_run() {
  return is_root() && have_program("nft");
}

std::string text_of(const boost::json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}
std::int64_t int_of(const boost::json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_int64() ? v->as_int64() : -1;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every regular file under `dir` whose bytes contain `needle`.
std::vector<std::string> files_holding(const fs::path& dir, const std::string& needle) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    if (e.is_regular_file() && read_all(e.path()).find(needle) != std::string::npos)
      out.push_back(e.path().string());
  }
  return out;
}

// Whether the readable memory of process `pid` holds `needle` (/proc/PID/mem, as gcore would
// read it). Regions past 1 GiB are reservations (sanitizer shadow), not data, and are skipped.
bool memory_holds(pid_t pid, const std::string& needle) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  const int fd = ::open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0) << "cannot open the memory of " << pid;
  if (fd < 0)
    return false;
  bool found = false;
  std::string line;
  std::string buf;
  while (!found && std::getline(maps, line)) {
    unsigned long begin = 0;
    unsigned long end = 0;
    char perms[5] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %4s", &begin, &end, perms) != 3 || perms[0] != 'r')
      continue;
    if (end - begin > (1UL << 30) || line.find("[vvar]") != std::string::npos)
      continue;
    buf.resize(end - begin);
    const auto got = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(begin));
    if (got <= 0)
      continue;
    buf.resize(static_cast<std::size_t>(got));
    found = buf.find(needle) != std::string::npos;
  }
  ::close(fd);
  return found;
}

std::string random_hex(std::size_t n) {
  std::random_device rd;
  std::string out;
  for (std::size_t i = 0; i < n; ++i)
    out += "0123456789abcdef"[rd() % 16];
  return out;
}

// `lab node list`'s revision lag of a node; -1 when absent or unknown.
std::int64_t lag_of(PeerFleet& fleet, const std::string& name) {
  auto nodes = lab::shared::json::parse(fleet.lab_out({"node", "list", "--output", "json"}));
  if (!nodes || !nodes->is_array())
    return -1;
  for (const auto& n : nodes->as_array()) {
    if (n.is_object() && text_of(n.as_object(), "name") == name)
      return int_of(n.as_object(), "revision_lag");
  }
  return -1;
}

void wait_for_keepers(PeerFleet& fleet, std::int64_t keeps) {
  for (std::size_t i = 0; i < fleet.size(); ++i) {
    auto& a = fleet.agent(i);
    boost::json::object last;
    const bool ready = wait_until(
        [&] {
          last = fleet.status(a);
          return int_of(last, "kept_nodes") == keeps;
        },
        90s);
    ASSERT_TRUE(ready) << a.name << " never kept " << keeps
                       << " envelopes: " << boost::json::serialize(last) << "\n"
                       << a.process->output();
  }
}

void wait_unreachable(PeerFleet& fleet, PeerFleet::Agent& a) {
  boost::json::object last;
  ASSERT_TRUE(wait_until(
      [&] {
        last = fleet.status(a);
        return text_of(last, "sync") == "unreachable";
      },
      60s))
      << a.name << " never noticed it is cut off: " << boost::json::serialize(last);
}

TEST(PeerSync, ACutOffNodeCatchesUpThroughItsKeepersAndNoKeeperCanReadItsSecret) {
  if (!can_run())
    GTEST_SKIP() << "needs root (network namespaces) and nftables";
  PeerFleet fleet(5);
  fleet.join_all({{}, {}, {}, {}, {"role=edge"}});
  wait_for_keepers(fleet, 3);
  auto& e = fleet.agent(4);

  fleet.cut_off(e);
  wait_unreachable(fleet, e);
  const std::int64_t before = int_of(fleet.status(e), "revision");

  // Two changes for E while it is cut off: a label, and a secret only E is entitled to.
  const std::string secret = "peer-secret-" + random_hex(32);
  TempDir scratch("lab-peer-secret");
  const auto secret_file = scratch.write("value", secret);
  fleet.lab_ok({"secret", "set", "edge-secret", "--from-file", secret_file.string(),
                "--entitlement", "role=edge"});
  fleet.lab_ok({"node", "label", "e", "color=blue"});
  const auto changed = Clock::now();

  const auto labels_file = e.node->run_dir() / "labels.json";
  const auto secret_out = e.node->run_dir() / "secrets" / "edge-secret";
  const bool caught_up = wait_until(
      [&] {
        return contains(read_all(labels_file), "\"color\":\"blue\"") &&
               read_all(secret_out) == secret;
      },
      60s);
  const double took = std::chrono::duration<double>(Clock::now() - changed).count();
  ASSERT_TRUE(caught_up) << "E did not catch up through its keepers:\n" << e.process->output();
  std::cout << "a change reached the cut-off node through its keepers in " << took
            << " s (gossip interval 1 s)\n";
  // Two rounds of at most 1.2 s each, and the time for the keepers to be handed the envelope
  // and for TLS handshakes under the sanitizers.
  EXPECT_LE(took, 2 * 1.2 + 4.0);

  // The coordinator sees E behind: its agent last polled with an older revision.
  EXPECT_GT(lag_of(fleet, "e"), 0);

  const auto status = fleet.status(e);
  EXPECT_EQ(text_of(status, "source"), "peer") << boost::json::serialize(status);
  EXPECT_TRUE(contains(text_of(status, "source_peer"), ":8444")) << boost::json::serialize(status);
  EXPECT_EQ(text_of(status, "sync"), "unreachable") << boost::json::serialize(status);
  EXPECT_GT(int_of(status, "revision"), before);
  EXPECT_TRUE(contains(e.process->output(), "applied bundle relayed by a keeper"));

  // No sideways leak: E's rendered file holds the secret (the scan works), no keeper's files or
  // memory do.
  EXPECT_FALSE(files_holding(e.node->dir().path(), secret).empty());
  for (std::size_t i = 0; i < 4; ++i) {
    auto& k = fleet.agent(i);
    EXPECT_EQ(files_holding(k.node->dir().path(), secret), std::vector<std::string>{}) << k.name;
    EXPECT_FALSE(memory_holds(k.process->pid(), secret)) << k.name << " holds the plaintext";
  }

  // The coordinator is back: E converges on it, and a later change comes from it.
  fleet.reconnect(e);
  boost::json::object back;
  ASSERT_TRUE(wait_until(
      [&] {
        back = fleet.status(e);
        return text_of(back, "sync") == "ok";
      },
      60s))
      << boost::json::serialize(back);
  fleet.lab_ok({"node", "label", "e", "color=green", "--overwrite"});
  ASSERT_TRUE(wait_until(
      [&] {
        back = fleet.status(e);
        return contains(read_all(labels_file), "\"color\":\"green\"") &&
               text_of(back, "source") == "coordinator";
      },
      30s))
      << boost::json::serialize(back);
  EXPECT_GT(int_of(back, "revision"), int_of(status, "revision"));
  EXPECT_TRUE(wait_until([&] { return lag_of(fleet, "e") == 0; }, 30s));
  EXPECT_EQ(read_all(secret_out), secret);
}

// A probe with node C's own certificate and key at a peer's listener: the HTTP status.
int probe_as(PeerFleet& fleet, PeerFleet::Agent& as, const PeerFleet::Agent& target,
             const TempDir& scratch) {
  const auto settings = as.node->settings();
  auto node = daemon::open_node(settings);
  EXPECT_TRUE(node) << (node ? "" : node.error().message());
  if (!node)
    return -1;
  const auto cert = scratch.write(as.name + ".pem", node->identity.certificate_pem);
  const auto key = scratch.write(as.name + ".key", node->identity.tls_key_pem);
  const auto r = run({"ip",
                      "netns",
                      "exec",
                      as.ns->name(),
                      "curl",
                      "-sk",
                      "-o",
                      "/dev/null",
                      "-w",
                      "%{http_code}",
                      "--max-time",
                      "10",
                      "--cert",
                      cert.string(),
                      "--key",
                      key.string(),
                      "-X",
                      "POST",
                      "-H",
                      "Lab-Fleet-Revision: 0",
                      "https://" + target.ip + ":8444/v1/peer/fleet"},
                     30s);
  (void)fleet;
  try {
    return std::stoi(r.output);
  } catch (...) {
    return -1;
  }
}

TEST(PeerSync, WithTheCoordinatorGoneARevokedNodeIsShutOutByEveryPeer) {
  if (!can_run() || !have_program("curl"))
    GTEST_SKIP() << "needs root (network namespaces), nftables and curl";
  PeerFleet fleet(5);
  fleet.join_all();
  wait_for_keepers(fleet, 3);
  auto& a = fleet.agent(0);
  auto& c = fleet.agent(2);
  TempDir scratch("lab-peer-probe");
  ASSERT_EQ(probe_as(fleet, c, fleet.agent(1), scratch), 204) << "C is a peer like any other";

  // Only A still hears from the coordinator: what the others learn, they learn from peers.
  for (std::size_t i = 1; i < fleet.size(); ++i)
    fleet.cut_off(fleet.agent(i));
  for (std::size_t i = 1; i < fleet.size(); ++i)
    wait_unreachable(fleet, fleet.agent(i));
  const std::int64_t held = int_of(fleet.status(a), "fleet_revision");
  fleet.lab_ok({"node", "revoke", "c"});
  std::int64_t revoked_at = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        revoked_at = int_of(fleet.status(a), "fleet_revision");
        return revoked_at > held;
      },
      30s))
      << a.process->output();
  fleet.stop_coordinator();
  const auto gone = Clock::now();

  for (const std::size_t i : {1, 3, 4}) {
    auto& peer = fleet.agent(i);
    boost::json::object last;
    EXPECT_TRUE(wait_until(
        [&] {
          last = fleet.status(peer);
          return int_of(last, "fleet_revision") >= revoked_at;
        },
        30s))
        << peer.name << " never learned the revocation: " << boost::json::serialize(last);
  }
  std::cout << "the revocation reached every peer through gossip in "
            << std::chrono::duration<double>(Clock::now() - gone).count()
            << " s after the coordinator stopped (gossip interval 1 s, 5 nodes)\n";
  for (const std::size_t i : {0, 1, 3, 4}) {
    EXPECT_EQ(probe_as(fleet, c, fleet.agent(i), scratch), 403)
        << fleet.agent(i).name << " still talks to the revoked node";
    EXPECT_TRUE(contains(fleet.agent(i).process->output(), "this certificate or node is revoked"))
        << fleet.agent(i).name;
  }
}

}  // namespace
