#pragma once
// A small fleet on its own network: a switch namespace with a bridge, the coordinator (`lab
// serve`) in a namespace at 10.88.0.1 and each agent (real `labd run`, peer listener on its own
// address, one-second gossip rounds) in a namespace of its own at 10.88.0.11, .12, ... nftables
// inside an agent's namespace cuts it off from the coordinator while its peers stay reachable.
// Everything is removed with the fixture.

#include "shared/json/json.hpp"
#include "tests/integration/agent/labd_fixture.hpp"
#include "tests/support/netns.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <boost/json/object.hpp>
#include <fmt/format.h>

#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace lab::tests {

class PeerFleet {
 public:
  static constexpr const char* kCoordinatorIp = "10.88.0.1";
  static constexpr int kCoordinatorPort = 8443;

  struct Agent {
    std::string name;
    std::string ip;
    std::unique_ptr<NetNs> ns;
    std::unique_ptr<LabdNode> node;
    std::optional<ChildProcess> process;
    std::unique_ptr<Veth> link;
  };

  explicit PeerFleet(int agents, std::string gossip_interval = "1s")
      : switch_("lps"), coordinator_ns_("lpc"), dir_("lab-peers") {
    switch_.ip("link add br0 type bridge");
    switch_.ip("link set br0 up");
    links_.push_back(std::make_unique<Veth>(coordinator_ns_, std::string(kCoordinatorIp) + "/24",
                                            switch_, std::string()));
    switch_.ip("link set " + links_.back()->b_name() + " master br0");
    start_coordinator();
    for (int i = 0; i < agents; ++i) {
      auto a = std::make_unique<Agent>();
      a->name = std::string(1, static_cast<char>('a' + i));
      a->ip = fmt::format("10.88.0.{}", 11 + i);
      a->ns = std::make_unique<NetNs>("lpa");
      a->link = std::make_unique<Veth>(*a->ns, a->ip + "/24", switch_, std::string());
      switch_.ip("link set " + a->link->b_name() + " master br0");
      a->node = std::make_unique<LabdNode>(fmt::format("key_protection = \"file\"\n"
                                                       "[peer]\n"
                                                       "listen = \"{}:8444\"\n"
                                                       "gossip_interval = \"{}\"\n",
                                                       a->ip, gossip_interval),
                                           false);
      agents_.push_back(std::move(a));
    }
  }

  PeerFleet(const PeerFleet&) = delete;
  PeerFleet& operator=(const PeerFleet&) = delete;
  ~PeerFleet() {
    for (auto& a : agents_) {
      if (a->process)
        a->process->stop();
    }
    if (coordinator_)
      coordinator_->stop();
  }

  void start_coordinator() {
    ChildProcess::Options o;
    o.argv = {lab_binary().string(),
              "serve",
              "--data-dir",
              data_dir(),
              "--set",
              fmt::format("coordinator.listen={}:{}", kCoordinatorIp, kCoordinatorPort)};
    o.netns = coordinator_ns_.name();
    coordinator_.reset();
    coordinator_.emplace(ChildProcess::start(std::move(o)));
    if (!wait_until(
            [&] {
              return coordinator_->output().find("msg=ready") != std::string::npos ||
                     !coordinator_->running();
            },
            60s) ||
        !coordinator_->running()) {
      throw std::runtime_error("lab serve did not start:\n" + coordinator_->output());
    }
  }
  void stop_coordinator() {
    coordinator_->stop();
    coordinator_.reset();
  }
  [[nodiscard]] std::string coordinator_output() const {
    return coordinator_ ? coordinator_->output() : std::string();
  }

  [[nodiscard]] std::string data_dir() const { return (dir_ / "data").string(); }
  [[nodiscard]] std::string url() const {
    return fmt::format("https://{}:{}", kCoordinatorIp, kCoordinatorPort);
  }

  /// `lab ARGS…` inside the coordinator's namespace.
  [[nodiscard]] CommandResult lab(std::vector<std::string> args) const {
    std::vector<std::string> argv{"ip", "netns", "exec", coordinator_ns_.name(),
                                  lab_binary().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, 60s, {{"LAB_DATA_DIR", data_dir()}, {"LAB_SERVER", url()}});
  }
  /// stdout of `lab ARGS…` alone (stderr dropped), trailing newline removed.
  [[nodiscard]] std::string lab_out(const std::vector<std::string>& args) const {
    std::string script = "LAB_DATA_DIR='" + data_dir() + "' LAB_SERVER='" + url() +
                         "' ip netns exec " + coordinator_ns_.name() + " '" +
                         lab_binary().string() + "'";
    for (const auto& a : args)
      script += " '" + a + "'";
    auto r = sh(script + " 2>/dev/null");
    std::string out = r.output;
    while (!out.empty() && out.back() == '\n')
      out.pop_back();
    return out;
  }
  /// `lab ARGS…` that must succeed; its stdout and stderr.
  std::string lab_ok(const std::vector<std::string>& args) const {
    auto r = lab(args);
    if (r.exit_code != 0)
      throw std::runtime_error("lab command failed: " + r.output);
    return r.output;
  }

  [[nodiscard]] std::size_t size() const { return agents_.size(); }
  [[nodiscard]] Agent& agent(std::size_t i) { return *agents_.at(i); }

  /// `labd --config … ARGS…` inside the agent's namespace.
  [[nodiscard]] CommandResult labd(const Agent& a, std::vector<std::string> args) const {
    std::vector<std::string> argv{"ip",
                                  "netns",
                                  "exec",
                                  a.ns->name(),
                                  labd_binary().string(),
                                  "--config",
                                  a.node->config().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, 60s);
  }
  [[nodiscard]] boost::json::object status(const Agent& a) const {
    auto r = labd(a, {"status", "--output", "json"});
    auto o = shared::json::parse_object(r.output);
    return o ? *o : boost::json::object{};
  }

  /// Joins every agent (labels given per agent) and starts `labd run` in its namespace.
  void join_all(const std::vector<std::vector<std::string>>& labels = {}) {
    for (std::size_t i = 0; i < agents_.size(); ++i) {
      std::vector<std::string> args{"token", "create", "--ttl", "1h"};
      if (i < labels.size()) {
        for (const auto& l : labels[i]) {
          args.emplace_back("--label");
          args.push_back(l);
        }
      }
      const std::string js = lab_out(args);
      auto joined = labd(*agents_[i], {"join", js, "--hostname", agents_[i]->name});
      if (joined.exit_code != 0)
        throw std::runtime_error("labd join failed: " + joined.output);
      start(*agents_[i]);
    }
  }
  void start(Agent& a) {
    ChildProcess::Options o;
    o.argv = {labd_binary().string(), "--config", a.node->config().string(), "run"};
    o.netns = a.ns->name();
    a.process.emplace(ChildProcess::start(std::move(o)));
    if (!a.node->wait_ready())
      throw std::runtime_error("labd did not start: " + a.process->output());
  }

  /// Drops every packet between the agent and the coordinator (both ways), peers untouched.
  void cut_off(const Agent& a) const {
    a.ns->exec(
        fmt::format("nft add table inet labcut && "
                    "nft add chain inet labcut out '{{ type filter hook output priority 0; }}' && "
                    "nft add chain inet labcut in '{{ type filter hook input priority 0; }}' && "
                    "nft add rule inet labcut out ip daddr {0} drop && "
                    "nft add rule inet labcut in ip saddr {0} drop",
                    kCoordinatorIp));
  }
  void reconnect(const Agent& a) const { a.ns->exec("nft delete table inet labcut"); }

 private:
  NetNs switch_;
  NetNs coordinator_ns_;
  TempDir dir_;
  std::vector<std::unique_ptr<Veth>> links_;
  std::optional<ChildProcess> coordinator_;
  std::vector<std::unique_ptr<Agent>> agents_;
};

}  // namespace lab::tests
