#pragma once

// Building blocks of the DHCP integration tests: `lab serve` with only DHCP enabled inside a
// network namespace, UDP sockets opened inside a namespace, a scripted DHCP client for the
// exchanges no packaged client can make (PXE on port 4011, hundreds of distinct MACs), and a
// relay agent forwarding between two namespaces with giaddr and option 82.

#include "pxe/dhcp/wire/message.hpp"
#include "tests/support/netns.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace lab::tests::dhcp {

namespace wire = pxe::dhcp::wire;

/// `lab serve` with the given TOML (which must enable dhcp) and the coordinator disabled, in
/// `ns`; data under `dir`/data.
/// Waits for "msg=ready"; throws with the output when the server exits or does not get there.
ChildProcess start_lab(const NetNs& ns, const TempDir& dir, const std::string& toml,
                       std::string_view config_name = "lab.toml");

/// The lease journal's records ("L ip state expires mac client crc") of a data directory.
std::vector<std::string> journal_lines(const TempDir& dir);

/// A file descriptor closed on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();
  [[nodiscard]] int get() const noexcept { return fd_; }

 private:
  int fd_ = -1;
};

/// A UDP socket created inside `ns`, bound to address:port (0.0.0.0 when empty), limited to
/// `device` when given, allowed to broadcast. Throws std::runtime_error on failure.
Fd udp_socket_in(const NetNs& ns, const std::string& address, std::uint16_t port,
                 const std::string& device = {});

/// An AF_PACKET socket inside `ns` that sees every IPv4 datagram arriving on `device` (a
/// capture, as tcpdump's): the replies a peer such as perfdhcp received, whatever it does with
/// them. Its receive buffer is forced to `buffer` bytes. Throws std::runtime_error on failure.
Fd capture_socket_in(const NetNs& ns, const std::string& device, int buffer = 16 << 20);
/// The DHCP message of a captured IPv4/UDP datagram to `port`, or nullopt for anything else.
std::optional<wire::Message> dhcp_in_ip_packet(std::span<const std::uint8_t> packet,
                                               std::uint16_t port);

/// Sends a message (or raw bytes) from `fd` to ip:port.
void send_to(int fd, const wire::Message& m, const std::string& ip, std::uint16_t port);
void send_raw(int fd, const std::vector<std::uint8_t>& bytes, const std::string& ip,
              std::uint16_t port);

/// A received reply and its sender.
struct Received {
  wire::Message message;
  std::string from;
};
/// Waits up to `timeout` for a packet that parses and satisfies `accept`.
std::optional<Received> receive(int fd, std::chrono::milliseconds timeout,
                                const std::function<bool(const wire::Message&)>& accept);

/// A DHCPDISCOVER or REQUEST as a client would build it.
wire::Message client_message(wire::MessageType type, const std::array<std::uint8_t, 6>& mac,
                             std::uint32_t xid);
wire::MessageType type_of(const wire::Message& m);

/// A relay agent between a client-side interface and a server: BOOTREQUESTs heard on port 67
/// of `client_device` get giaddr = `giaddr`, hops + 1 and option 82 (circuit id = the device
/// name) and go to server:67; BOOTREPLYs to giaddr:67 lose option 82 and go to the client,
/// broadcast out of `client_device` or unicast to ciaddr. Runs on its own thread.
class Relay {
 public:
  Relay(const NetNs& ns, std::string client_device, std::string giaddr, std::string server);
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;
  ~Relay();

  std::atomic<int> forwarded_requests{0};
  std::atomic<int> forwarded_replies{0};
  std::atomic<int> replies_with_option82{0};  // replies that echoed our circuit id

 private:
  void loop();
  std::string client_device_;
  std::string giaddr_;
  std::string server_;
  unsigned client_ifindex_ = 0;
  Fd fd_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace lab::tests::dhcp
