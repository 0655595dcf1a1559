// kill -9 of `lab serve` in the middle of a perfdhcp run: every ACK that reached the wire names
// a lease the restarted server recovered from its journal. The ACKs are read by a packet
// capture on perfdhcp's interface, so each one counts whether or not perfdhcp kept up.
#include "tests/integration/pxe/dhcp/dhcp_fixture.hpp"

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>

#include <csignal>
#include <map>
#include <sstream>

namespace {

using namespace lab::tests;
using namespace lab::tests::dhcp;

// The ACKs (chaddr → yiaddr) arriving at perfdhcp's address, recorded on a thread.
class AckCapture {
 public:
  AckCapture(const NetNs& ns, const std::string& device)
      : fd_(capture_socket_in(ns, device)), thread_([this] { loop(); }) {}
  AckCapture(const AckCapture&) = delete;
  AckCapture& operator=(const AckCapture&) = delete;
  ~AckCapture() { stop(); }

  void stop() {
    stop_ = true;
    if (thread_.joinable())
      thread_.join();
  }
  [[nodiscard]] std::size_t count() const { return count_; }
  /// Every ACK seen, as (MAC, address); call after stop().
  [[nodiscard]] const std::vector<std::pair<std::string, wire::Ipv4>>& acks() const {
    return acks_;
  }

 private:
  void loop() {
    std::vector<std::uint8_t> buf(65536);
    while (!stop_) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0)
        continue;
      const ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
      if (n <= 0)
        continue;
      // perfdhcp is a relay: the server answers it on port 67.
      auto m = dhcp_in_ip_packet(std::span(buf.data(), static_cast<std::size_t>(n)), 67);
      if (m && m->op == 2 && type_of(*m) == wire::MessageType::ack) {
        acks_.emplace_back(m->mac(), m->yiaddr);
        ++count_;
      }
    }
  }

  Fd fd_;
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> count_{0};
  std::vector<std::pair<std::string, wire::Ipv4>> acks_;
  std::thread thread_;
};

// The newest journal record of each address: state letter and MAC.
std::map<std::string, std::pair<std::string, std::string>> journal_by_ip(const TempDir& dir) {
  std::map<std::string, std::pair<std::string, std::string>> out;
  for (const auto& line : journal_lines(dir)) {
    std::istringstream in(line);
    std::string tag, ip, state, expires, mac;
    if (in >> tag >> ip >> state >> expires >> mac && tag == "L")
      out[ip] = {state, mac};
  }
  return out;
}

void kill_during_perfdhcp(bool lease_sync) {
  NetNs server("dks");
  NetNs client("dkc");
  Veth link(server, "10.77.0.1/16", client, "10.77.0.2/16");
  TempDir dir("lab-dhcp-kill");
  const std::string config =
      "[dhcp]\nenabled = true\nmode = \"full\"\nconflict_probe = false\nlease_sync = " +
      std::string(lease_sync ? "true" : "false") + "\ninterface = \"" + link.a_name() +
      "\"\n[[dhcp.subnets]]\nsubnet = \"10.77.0.0/16\"\nrange_start = \"10.77.1.0\"\n"
      "range_end = \"10.77.255.250\"\n";
  auto lab = start_lab(server, dir, config);
  AckCapture capture(client, link.b_name());
  auto perfdhcp = ChildProcess::start({.argv = {"perfdhcp", "-4", "-l", "10.77.0.2", "-r", "500",
                                                "-R", "20000", "-p", "30", "10.77.0.1"},
                                       .env = {},
                                       .netns = client.name(),
                                       .log = {}});
  // Killed mid-run, while ACK batches are being committed and sent.
  ASSERT_TRUE(wait_until([&] { return capture.count() >= 400; }, 30s))
      << "ACKs seen: " << capture.count() << "\n"
      << perfdhcp.output() << lab.output();
  lab.signal(SIGKILL);
  EXPECT_EQ(lab.wait(5s), 128 + SIGKILL);
  // ACKs already on the wire when the process died still arrive.
  std::this_thread::sleep_for(300ms);
  capture.stop();
  perfdhcp.signal(SIGKILL);
  (void)perfdhcp.wait(5s);

  // The restarted server recovers the journal (dropping a torn tail) and rewrites it with the
  // leases it now holds; a clean stop leaves exactly those.
  lab = start_lab(server, dir, config, "lab2.toml");
  EXPECT_EQ(lab.stop(10s), 0) << lab.output();
  const auto held = journal_by_ip(dir);
  ASSERT_GE(capture.acks().size(), 400U);
  std::size_t missing = 0;
  for (const auto& [mac, ip] : capture.acks()) {
    const auto it = held.find(ip.to_string());
    if (it == held.end() || it->second.first != "b" || it->second.second != mac) {
      if (++missing <= 10)
        ADD_FAILURE() << "ACKed " << ip.to_string() << " to " << mac
                      << " but the recovered journal "
                      << (it == held.end() ? "does not hold it"
                                           : "says " + it->second.first + " " + it->second.second);
    }
  }
  EXPECT_EQ(missing, 0U) << "of " << capture.acks().size() << " ACKs";
}

TEST(DhcpCrash, EveryAckOnTheWireSurvivesKillNineWithLeaseSync) {
  LAB_REQUIRE_ROOT();
  LAB_REQUIRE_PROGRAM("perfdhcp");
  kill_during_perfdhcp(true);
}

TEST(DhcpCrash, EveryAckOnTheWireSurvivesKillNineWithoutLeaseSync) {
  LAB_REQUIRE_ROOT();
  LAB_REQUIRE_PROGRAM("perfdhcp");
  kill_during_perfdhcp(false);
}

}  // namespace
