#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lab::tests {

/// A network namespace the test creates and removes: `ip netns add`, loopback up; the
/// destructor deletes it (and with it every interface inside). Names are unique per process
/// and per object, so tests can run in parallel. Requires root.
class NetNs {
 public:
  explicit NetNs(std::string_view prefix = "lab");
  NetNs(const NetNs&) = delete;
  NetNs& operator=(const NetNs&) = delete;
  ~NetNs();

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  /// Runs `ip -n <ns> <args>` or a command inside; throws std::runtime_error on failure.
  void ip(const std::string& args) const;
  void exec(const std::string& shell_command) const;
  /// `ip netns exec <ns>` prefix for ChildProcess::Options::argv or run().
  [[nodiscard]] std::vector<std::string> prefix() const { return {"ip", "netns", "exec", name_}; }

 private:
  std::string name_;
};

/// A veth pair between two namespaces, each end with an address ("10.77.0.1/24") and up.
/// Deleted with the namespaces. Interface names are unique (≤ 15 characters).
class Veth {
 public:
  Veth(const NetNs& a, const std::string& a_cidr, const NetNs& b, const std::string& b_cidr);
  [[nodiscard]] const std::string& a_name() const noexcept { return a_; }
  [[nodiscard]] const std::string& b_name() const noexcept { return b_; }

 private:
  std::string a_;
  std::string b_;
};

/// A short interface name unique in this process ("lt" + pid + counter), for bridges and taps.
std::string unique_ifname(std::string_view prefix);

}  // namespace lab::tests
