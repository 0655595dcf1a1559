#include "tests/support/netns.hpp"

#include "tests/support/process.hpp"

#include <unistd.h>

#include <atomic>
#include <stdexcept>

namespace lab::tests {
namespace {

std::atomic<int> g_counter{0};

void must(const CommandResult& r, const std::string& what) {
  if (r.exit_code != 0)
    throw std::runtime_error(what + " failed: " + r.output);
}

}  // namespace

std::string unique_ifname(std::string_view prefix) {
  std::string name = std::string(prefix.substr(0, 4)) + std::to_string(getpid() % 100000) + "x" +
                     std::to_string(g_counter++);
  return name.substr(0, 15);
}

NetNs::NetNs(std::string_view prefix)
    : name_(std::string(prefix) + "-" + std::to_string(getpid()) + "-" +
            std::to_string(g_counter++)) {
  must(run({"ip", "netns", "add", name_}), "ip netns add " + name_);
  ip("link set lo up");
}

NetNs::~NetNs() {
  (void)run({"ip", "netns", "del", name_});
}

void NetNs::ip(const std::string& args) const {
  must(sh("ip -n " + name_ + " " + args), "ip -n " + name_ + " " + args);
}

void NetNs::exec(const std::string& shell_command) const {
  must(run({"ip", "netns", "exec", name_, "sh", "-c", shell_command}), shell_command);
}

Veth::Veth(const NetNs& a, const std::string& a_cidr, const NetNs& b, const std::string& b_cidr)
    : a_(unique_ifname("va")), b_(unique_ifname("vb")) {
  must(sh("ip link add " + a_ + " netns " + a.name() + " type veth peer name " + b_ + " netns " +
          b.name()),
       "veth " + a_);
  if (!a_cidr.empty())
    a.ip("addr add " + a_cidr + " dev " + a_);
  if (!b_cidr.empty())
    b.ip("addr add " + b_cidr + " dev " + b_);
  a.ip("link set " + a_ + " up");
  b.ip("link set " + b_ + " up");
}

}  // namespace lab::tests
