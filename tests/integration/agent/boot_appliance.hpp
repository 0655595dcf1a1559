#pragma once
// `lab serve` with the coordinator and HTTP boot on loopback (free ports) and the boot flight
// recorder, and the `lab` CLI pointed at it: what network-boot and enrolment tests boot from.
#include "tests/integration/pxe/httpboot/curl.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace lab::tests {

// `lab serve` with the coordinator and HTTP boot on 127.0.0.1 (free ports) and the recorder.
class BootAppliance {
 public:
  explicit BootAppliance(const std::string& coordinator_extra = "") {
    std::filesystem::create_directories(dir_ / "root" / "agent");
    const auto cfg = dir_.write(
        "lab.toml", fmt::format("[coordinator]\nenabled = true\nlisten = \"127.0.0.1:0\"\n{}\n"
                                "[httpboot]\nenabled = true\nlisten = \"127.0.0.1:0\"\n"
                                "root = \"{}\"\n",
                                coordinator_extra, (dir_ / "root").string()));
    serve_.emplace(ChildProcess::start({.argv = {lab_binary().string(), "serve", "--data-dir",
                                                 data_dir(), "--config", cfg.string()},
                                        .env = {},
                                        .netns = {},
                                        .log = {}}));
    const std::regex http(R"(component=httpboot msg=listening url=(http://127\.0\.0\.1:\d+))");
    const std::regex api(R"(component=coordinator msg=listening url=(https://\S+))");
    std::smatch m;
    const bool up = wait_until(
        [&] {
          const std::string out = serve_->output();
          if (out.find("msg=ready") == std::string::npos)
            return !serve_->running();
          if (!std::regex_search(out, m, http))
            return false;
          http_url_ = m[1];
          if (!std::regex_search(out, m, api))
            return false;
          api_url_ = m[1];
          return true;
        },
        60s);
    if (!up || api_url_.empty())
      throw std::runtime_error("lab serve did not start:\n" + serve_->output());
  }

  [[nodiscard]] std::string data_dir() const { return (dir_ / "data").string(); }
  [[nodiscard]] const std::string& http_url() const { return http_url_; }
  [[nodiscard]] const std::string& api_url() const { return api_url_; }
  /// curl arguments that authenticate as the first-start operator against the API.
  [[nodiscard]] std::vector<std::string> operator_auth() const {
    std::string token;
    std::ifstream(std::filesystem::path(data_dir()) / "operator.token") >> token;
    return {"--cacert", (std::filesystem::path(data_dir()) / "ca.pem").string(), "-H",
            "Authorization: Bearer " + token};
  }
  [[nodiscard]] std::string output() const { return serve_->output(); }

  [[nodiscard]] CommandResult lab(std::vector<std::string> args) const {
    std::vector<std::string> argv{lab_binary().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, 60s, {{"LAB_DATA_DIR", data_dir()}, {"LAB_SERVER", api_url_}});
  }
  /// `lab ARGS… --output json`, parsed; null when the command fails.
  [[nodiscard]] boost::json::value lab_json(std::vector<std::string> args) const {
    args.emplace_back("--output");
    args.emplace_back("json");
    std::vector<std::string> argv{lab_binary().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string script = "LAB_DATA_DIR='" + data_dir() + "' LAB_SERVER='" + api_url_ + "'";
    for (const auto& a : argv)
      script += " '" + a + "'";
    auto r = sh(script + " 2>/dev/null");
    boost::system::error_code ec;
    auto v = boost::json::parse(r.output, ec);
    return (r.exit_code == 0 && !ec) ? v : boost::json::value();
  }

  /// Registers the MAC for network boot from 127.0.0.1, as an operator does for a machine
  /// this appliance's DHCP does not serve (none runs in these tests).
  void register_machine(const std::string& mac) const {
    auto args = operator_auth();
    args.insert(args.end(), {"-X", "PUT", "-H", "Content-Type: application/json", "--data",
                             R"({"ip":"127.0.0.1"})"});
    auto r = httpboot::curl(api_url_ + "/v1/machines/" + mac, args);
    EXPECT_EQ(r.status, 200) << r.error << r.body;
  }

  /// The kernel command line of this MAC's iPXE script, as iPXE hands it to the kernel.
  [[nodiscard]] std::string cmdline(const std::string& mac) const {
    register_machine(mac);
    auto r = httpboot::curl(http_url_ + "/boot/" + mac + ".ipxe");
    EXPECT_EQ(r.status, 200) << r.error << r.body;
    std::istringstream in(r.body);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("kernel ", 0) == 0) {
        const auto args = line.find(' ', 7);  // after the kernel URL
        return args == std::string::npos ? std::string() : line.substr(args + 1);
      }
    }
    ADD_FAILURE() << "no kernel line in\n" << r.body;
    return {};
  }

  /// The kinds and details of the MAC's timeline, one "kind k=v k=v" string per event.
  [[nodiscard]] std::vector<std::string> timeline(const std::string& mac) const {
    std::vector<std::string> out;
    auto v = lab_json({"machine", "timeline", mac});
    if (!v.is_object() || !v.as_object().contains("events"))
      return out;
    for (const auto& e : v.as_object().at("events").as_array()) {
      std::string line(e.as_object().at("kind").as_string());
      if (const auto* d = e.as_object().if_contains("detail"); d && d->is_object()) {
        for (const auto& [k, val] : d->as_object())
          line += " " + std::string(k) + "=" + std::string(val.as_string());
      }
      out.push_back(std::move(line));
    }
    return out;
  }

  /// The node whose MACs include `mac`, from `lab node list --output json`.
  [[nodiscard]] std::optional<boost::json::object> node_by_mac(const std::string& mac) const {
    auto v = lab_json({"node", "list"});
    if (!v.is_array())
      return std::nullopt;
    for (const auto& n : v.as_array()) {
      for (const auto& m : n.as_object().at("macs").as_array()) {
        if (m.as_string() == mac)
          return n.as_object();
      }
    }
    return std::nullopt;
  }

 private:
  TempDir dir_{"lab-boot-serve"};
  std::optional<ChildProcess> serve_;
  std::string http_url_;
  std::string api_url_;
};

}  // namespace lab::tests
