#pragma once

#include "pxe/events/event.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lab::pxe::recorder {

/// How much the recorder keeps. Memory is bounded by
/// max_machines × events_per_machine + unattributed events.
struct Limits {
  std::size_t events_per_machine = 256;  // oldest events of a machine are dropped first
  std::size_t max_machines = 4096;       // least recently active machine is forgotten first
  std::size_t unattributed = 256;        // events whose IP no DHCP exchange explains
};

struct Stats {
  std::uint64_t recorded = 0;          // events accepted
  std::uint64_t attributed_by_ip = 0;  // events that arrived without a MAC and got one
  std::uint64_t unattributed = 0;      // events that arrived without a MAC and found none
  std::uint64_t machines_evicted = 0;
  std::size_t machines = 0;
};

/// The boot flight recorder: per-machine timelines of every boot step the PXE servers report.
/// DHCP events carry the MAC; TFTP and HTTP events only the client IP, which the recorder maps
/// back to a MAC through the addresses it saw handed out (dhcp-offer/ack, proxy-offer/ack).
/// Thread-safe: every member may be called from any thread; record() holds a mutex for a few
/// map operations and never blocks on I/O.
class Recorder final : public events::Sink {
 public:
  explicit Recorder(Limits limits = {});

  /// Normalises the MAC, attributes an IP-only event, appends it to the machine's timeline.
  /// Events with a malformed MAC are treated as having none.
  void record(events::Event event) override;

  /// The machine's events, oldest first; empty when unknown. Accepts any MAC spelling that
  /// normalize_mac() accepts.
  [[nodiscard]] std::vector<events::Event> timeline(std::string_view mac) const;
  /// The MAC that was last given (or confirmed) this IP by DHCP.
  [[nodiscard]] std::optional<std::string> mac_for_ip(std::string_view ip) const;
  /// The IP DHCP last gave (or confirmed for) this MAC.
  [[nodiscard]] std::optional<std::string> last_ip(std::string_view mac) const;
  /// Events that could not be attributed to a machine, oldest first.
  [[nodiscard]] std::vector<events::Event> unattributed() const;
  /// Known machines, most recently active first.
  [[nodiscard]] std::vector<std::string> machines() const;
  [[nodiscard]] Stats stats() const;

  /// Called with every event kept on a machine's timeline, after attribution, in order (under
  /// the recorder's lock): it must be quick and must not call back into the recorder. Set
  /// before the servers start.
  void on_kept(std::function<void(const events::Event&)> observer);
  /// Puts events back on their machines' timelines (a TimelineStore's, at start), oldest first,
  /// learning their addresses as record() does; the observer is not called.
  void restore(std::vector<events::Event> events);

 private:
  struct Machine {
    std::deque<events::Event> events;
    std::string ip;
    std::list<std::string>::iterator lru;
  };

  Machine& touch(const std::string& mac);
  void learn(const std::string& mac, const std::string& ip, Machine& machine);
  // Appends an attributed event to its machine's timeline; mu_ held.
  void keep(events::Event event);

  Limits limits_;
  mutable std::mutex mu_;
  std::list<std::string> lru_;  // front: most recently active
  std::unordered_map<std::string, Machine> machines_;
  std::unordered_map<std::string, std::string> ip_to_mac_;
  std::deque<events::Event> unattributed_;
  Stats stats_;
  std::function<void(const events::Event&)> observer_;
};

/// True for the events whose (MAC, IP) pair says "this machine has this address".
bool teaches_address(events::Kind kind) noexcept;

}  // namespace lab::pxe::recorder
