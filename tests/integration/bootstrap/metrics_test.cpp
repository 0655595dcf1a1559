// The metrics of `lab serve` through its real servers: a machine on a veth segment gets a lease
// from busybox udhcpc, fetches a file over TFTP (curl) and its iPXE script over HTTP, a stranger
// asks for another machine's script; the metrics listener then shows each of those, the text
// passes `promtool check metrics`, and a real Prometheus server scrapes it and answers a query.
#include "shared/version/version.hpp"
#include "tests/support/netns.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <string>

namespace {

using namespace lab::tests;

constexpr const char* kServerIp = "10.79.0.1";
constexpr const char* kMetricsUrl = "http://127.0.0.1:9464/metrics";

// The appliance in its own namespace with every component and the metrics listener on; the
// machine's namespace behind a veth pair, its end without an address as a booting NIC's.
class Site {
 public:
  Site() {
    std::filesystem::create_directories(dir_ / "tftp");
    std::filesystem::create_directories(dir_ / "boot" / "agent");
    dir_.write("tftp/undionly.kpxe", std::string(70000, 'x'));  // 35 blocks of 2 KiB and more
    dir_.write("boot/agent/vmlinuz", "kernel");
    dir_.write("boot/agent/initrd.img", "initrd");
    const auto cfg = dir_.write(
        "lab.toml",
        fmt::format("[coordinator]\nenabled = true\nlisten = \"127.0.0.1:0\"\n"
                    "[tftp]\nenabled = true\nlisten = \"{0}:69\"\nroot = \"{1}/tftp\"\n"
                    "[httpboot]\nenabled = true\nlisten = \"{0}:8080\"\nroot = \"{1}/boot\"\n"
                    "[metrics]\nlisten = \"127.0.0.1:9464\"\n"
                    "[dhcp]\nenabled = true\nmode = \"full\"\nconflict_probe = false\n"
                    "interface = \"{2}\"\n"
                    "[[dhcp.subnets]]\nsubnet = \"10.79.0.0/24\"\nrange_start = \"10.79.0.100\"\n"
                    "range_end = \"10.79.0.199\"\n",
                    kServerIp, dir_.path().string(), link_.a_name()));
    lab_.emplace(ChildProcess::start({.argv = {lab_binary().string(), "serve", "--data-dir",
                                               (dir_ / "data").string(), "--config", cfg.string()},
                                      .env = {},
                                      .netns = server_.name(),
                                      .log = {}}));
    if (!wait_until([&] { return ready() || !lab_->running(); }, 60s) || !ready())
      throw std::runtime_error("lab serve did not start:\n" + lab_->output());
  }

  // busybox udhcpc once; its script puts the leased address on the interface, as a booting
  // machine's network stack does. Returns the address.
  std::string lease() {
    const auto script = dir_.write("udhcpc.sh",
                                   "#!/bin/sh\n[ \"$1\" = bound ] || exit 0\n"
                                   "ip addr add \"$ip/$mask\" dev \"$interface\"\n"
                                   "echo \"$ip\" > " +
                                       (dir_ / "leased").string() + "\n");
    std::filesystem::permissions(script, std::filesystem::perms::owner_all);
    auto r = run({"ip", "netns", "exec", client_.name(), "busybox", "udhcpc", "-f", "-q", "-n",
                  "-i", link_.b_name(), "-s", script.string(), "-t", "4", "-T", "1", "-A", "1"},
                 30s);
    std::string ip = read_file(dir_ / "leased");
    while (!ip.empty() && ip.back() == '\n')
      ip.pop_back();
    if (ip.empty())
      ADD_FAILURE() << "udhcpc got no lease:\n" << r.output << lab_->output();
    return ip;
  }

  // curl from the machine's namespace; returns the HTTP status (or curl's failure text).
  [[nodiscard]] CommandResult curl_from_machine(const std::string& url) const {
    return run({"ip", "netns", "exec", client_.name(), "curl", "-s", "-o", "/dev/null", "-w",
                "%{http_code}", "--max-time", "10", url},
               20s);
  }

  [[nodiscard]] std::string scrape() const {
    return run({"ip", "netns", "exec", server_.name(), "curl", "-sf", "--max-time", "10",
                kMetricsUrl},
               20s)
        .output;
  }

  [[nodiscard]] std::string mac() const {
    return run({"ip", "netns", "exec", client_.name(), "cat",
                "/sys/class/net/" + link_.b_name() + "/address"})
        .output.substr(0, 17);
  }

  [[nodiscard]] const NetNs& server() const { return server_; }
  [[nodiscard]] const TempDir& dir() const { return dir_; }
  [[nodiscard]] std::string log() const { return lab_->output(); }

 private:
  bool ready() { return lab_->output().find("msg=ready") != std::string::npos; }

  NetNs server_{"mts"};
  NetNs client_{"mtc"};
  Veth link_{server_, std::string(kServerIp) + "/24", client_, ""};
  TempDir dir_{"lab-metrics"};
  std::optional<ChildProcess> lab_;
};

// The value of one sample ("name{labels}") in a scrape; nullopt when absent.
std::optional<double> sample(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos)
    return std::nullopt;
  return std::stod(text.substr(at + 1 + series.size() + 1));
}

TEST(ServeMetrics, EveryServerCountsWhatItDidAndPromtoolAcceptsTheText) {
  LAB_REQUIRE_ROOT();
  LAB_REQUIRE_PROGRAM("busybox");
  LAB_REQUIRE_PROGRAM("promtool");
  Site site;
  const std::string ip = site.lease();
  ASSERT_FALSE(ip.empty());
  auto tftp = site.curl_from_machine(fmt::format("tftp://{}/undionly.kpxe", kServerIp));
  EXPECT_EQ(tftp.exit_code, 0) << tftp.output;
  auto missing = site.curl_from_machine(fmt::format("tftp://{}/nonexistent.efi", kServerIp));
  EXPECT_NE(missing.exit_code, 0) << "a missing file is refused";
  auto script =
      site.curl_from_machine(fmt::format("http://{}:8080/boot/{}.ipxe", kServerIp, site.mac()));
  EXPECT_EQ(script.output, "200") << site.log();
  // Another machine's script, from this address: refused, no token.
  auto stranger =
      site.curl_from_machine(fmt::format("http://{}:8080/boot/52-54-00-99-99-99.ipxe", kServerIp));
  EXPECT_EQ(stranger.output, "403");
  auto kernel = site.curl_from_machine(fmt::format("http://{}:8080/boot/agent/vmlinuz", kServerIp));
  EXPECT_EQ(kernel.output, "200");

  const std::string subnet = "subnet=\"10.79.0.0/24\"";
  std::string text;
  // The pool gauges refresh every 5 s; everything else is counted as it happens.
  ASSERT_TRUE(wait_until(
      [&] {
        text = site.scrape();
        return sample(text, "lab_dhcp_pool_addresses_in_use{" + subnet + "}").value_or(0) >= 1;
      },
      15s))
      << text;
  EXPECT_GE(sample(text, "lab_dhcp_received_total{type=\"discover\"," + subnet + "}"), 1);
  EXPECT_GE(sample(text, "lab_dhcp_received_total{type=\"request\"," + subnet + "}"), 1);
  EXPECT_GE(sample(text, "lab_dhcp_sent_total{type=\"offer\"," + subnet + "}"), 1);
  EXPECT_GE(sample(text, "lab_dhcp_sent_total{type=\"ack\"," + subnet + "}"), 1);
  EXPECT_EQ(sample(text, "lab_dhcp_sent_total{type=\"nak\"," + subnet + "}"), 0);
  EXPECT_EQ(sample(text, "lab_dhcp_pool_addresses{" + subnet + "}"), 100);
  EXPECT_EQ(sample(text, "lab_dhcp_pool_addresses_in_use{" + subnet + "}"), 1);
  EXPECT_GE(sample(text, "lab_dhcp_lease_commit_seconds_count"), 1);
  EXPECT_EQ(sample(text, "lab_tftp_transfers_total{outcome=\"done\"}"), 1);
  EXPECT_EQ(sample(text, "lab_tftp_transfers_total{outcome=\"refused\"}"), 1);
  EXPECT_EQ(sample(text, "lab_tftp_bytes_total"), 70000);
  EXPECT_EQ(sample(text, "lab_tftp_transfers_active"), 0);
  EXPECT_EQ(sample(text, "lab_httpboot_requests_total{kind=\"script\",status=\"200\"}"), 1);
  EXPECT_EQ(sample(text, "lab_httpboot_requests_total{kind=\"script\",status=\"403\"}"), 1);
  EXPECT_EQ(sample(text, "lab_httpboot_requests_total{kind=\"file\",status=\"200\"}"), 1);
  EXPECT_EQ(sample(text, "lab_httpboot_boot_tokens_total{outcome=\"minted\"}"), 1);
  EXPECT_EQ(sample(text, "lab_httpboot_boot_tokens_total{outcome=\"refused\"}"), 1);
  EXPECT_GE(sample(text, "lab_recorder_events_total"), 5);
  EXPECT_GE(sample(text, "lab_recorder_machines"), 1);
  EXPECT_TRUE(sample(text, "lab_coordinator_revision").has_value()) << text;
  EXPECT_EQ(sample(text, std::string("lab_build_info{version=\"") + lab::shared::kVersion + "\"}"),
            1);

  const auto file = site.dir().write("scrape.prom", text);
  auto check = sh("promtool check metrics < " + file.string() + " 2>&1");
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_EQ(check.output, "") << "promtool's lint has nothing to say";

  // Only /metrics, only GET.
  auto other = run({"ip", "netns", "exec", site.server().name(), "curl", "-s", "-o", "/dev/null",
                    "-w", "%{http_code}", "http://127.0.0.1:9464/"});
  EXPECT_EQ(other.output, "404");
  auto post = run({"ip", "netns", "exec", site.server().name(), "curl", "-s", "-o", "/dev/null",
                   "-w", "%{http_code}", "-X", "POST", kMetricsUrl});
  EXPECT_EQ(post.output, "405");
}

TEST(ServeMetrics, APrometheusServerScrapesTheApplianceAndAnswersAQuery) {
  LAB_REQUIRE_ROOT();
  LAB_REQUIRE_PROGRAM("busybox");
  LAB_REQUIRE_PROGRAM("prometheus");
  Site site;
  ASSERT_FALSE(site.lease().empty());
  const auto config =
      site.dir().write("prometheus.yml",
                       "global:\n  scrape_interval: 1s\n"
                       "scrape_configs:\n  - job_name: lab\n"
                       "    static_configs:\n      - targets: ['127.0.0.1:9464']\n");
  auto prometheus =
      ChildProcess::start({.argv = {"prometheus", "--config.file=" + config.string(),
                                    "--storage.tsdb.path=" + (site.dir() / "tsdb").string(),
                                    "--web.listen-address=127.0.0.1:9090"},
                           .env = {},
                           .netns = site.server().name(),
                           .log = {}});
  const std::string query =
      "http://127.0.0.1:9090/api/v1/query?query="
      "lab_dhcp_sent_total%7Btype%3D%22ack%22%7D";
  std::string answer;
  const bool got = wait_until(
      [&] {
        answer = run({"ip", "netns", "exec", site.server().name(), "curl", "-s", "--max-time", "5",
                      query},
                     10s)
                     .output;
        return answer.find("\"subnet\":\"10.79.0.0/24\"") != std::string::npos &&
               answer.find("\"1\"]") != std::string::npos;
      },
      60s);
  EXPECT_TRUE(got) << answer << "\n" << prometheus.output();
  // The target is up, i.e. every scrape parsed.
  auto up = run({"ip", "netns", "exec", site.server().name(), "curl", "-s", "--max-time", "5",
                 "http://127.0.0.1:9090/api/v1/query?query=up"},
                10s);
  EXPECT_NE(up.output.find("\"value\":["), std::string::npos) << up.output;
  EXPECT_NE(up.output.find(",\"1\"]"), std::string::npos) << up.output;
  prometheus.stop();
}

}  // namespace
