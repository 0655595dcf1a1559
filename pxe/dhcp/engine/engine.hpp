#pragma once

#include "pxe/dhcp/engine/boot.hpp"
#include "pxe/dhcp/engine/lease_store.hpp"
#include "pxe/dhcp/wire/message.hpp"
#include "pxe/events/event.hpp"
#include "shared/errors/error.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace lab::pxe::dhcp::engine {

/// Configuration errors of the engine (start-up only).
enum class EngineError {
  no_server_ip = 1,  // server_ip is unset
  bad_subnet,        // a subnet, range or option that does not parse or does not fit
  bad_reservation,   // a reservation with a bad MAC or an address outside every subnet
  no_subnet,         // full mode without any subnet
};
const boost::system::error_category& engine_category() noexcept;
inline boost::system::error_code make_error_code(EngineError e) noexcept {
  return {static_cast<int>(e), engine_category()};
}

/// Wall-clock time, injected so that tests control lease and offer expiry.
class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual std::chrono::system_clock::time_point now() const = 0;
};
class SystemClock final : public Clock {
 public:
  [[nodiscard]] std::chrono::system_clock::time_point now() const override {
    return std::chrono::system_clock::now();
  }
};

struct Subnet {
  wire::Ipv4 network;
  int prefix = 24;
  wire::Ipv4 range_start, range_end;
  wire::Ipv4 router;  // zero: no option 3
  std::vector<wire::Ipv4> dns;
  std::chrono::seconds lease_time{3600};
  /// "10.0.0.0/24"; nullopt when it does not parse or has host bits set.
  static std::optional<Subnet> parse_cidr(std::string_view cidr);
  [[nodiscard]] wire::Ipv4 mask() const noexcept;
  [[nodiscard]] bool contains(wire::Ipv4 ip) const noexcept;
};

struct Reservation {
  std::string mac;  // lower case "52:54:00:12:34:56"
  wire::Ipv4 ip;
  std::string hostname;
};

enum class Mode { full, proxy };

struct EngineConfig {
  Mode mode = Mode::full;
  wire::Ipv4 server_ip;
  std::vector<Subnet> subnets;
  std::vector<Reservation> reservations;
  BootConfig boot;
  std::chrono::seconds offer_hold{30};     // an offered address is kept this long
  std::chrono::seconds decline_hold{600};  // a declined address is out of use this long
  /// Proxy mode: how long the address a PXE client used on port 4011 is remembered for it.
  std::chrono::seconds observation_time{3600};
};

/// A received packet and where it came from.
struct Inbound {
  wire::Message message;
  wire::Ipv4 source;
  std::uint16_t source_port = 68;
  bool proxy_port = false;  // arrived on port 4011 (PXE boot server discovery)
};

/// Where a reply goes (RFC 2131 §4.1). The server maps the port kinds to numbers.
struct Outbound {
  enum class Port { client, server, source };  // 68, 67 (relay), the sender's port
  wire::Message message;
  wire::Ipv4 destination;
  Port port = Port::client;
  /// The client has no address yet and did not ask for a broadcast: `destination` is yiaddr,
  /// reachable only through the client's hardware address (chaddr), which the server must
  /// enter in the ARP table first. When it cannot, it broadcasts instead.
  bool to_hardware = false;
  [[nodiscard]] bool broadcast() const noexcept { return destination == wire::kBroadcast; }
};

/// What the engine decided. `durable` records must be committed to the lease store before
/// `reply` is sent; an empty reply means the packet is ignored.
struct Outcome {
  std::optional<Outbound> reply;
  std::vector<Lease> durable;
  std::string ignored;  // why no reply was sent, for debug logs
};

/// The DHCPv4 decision: full mode (address pools, reservations, relays, boot information) or
/// proxy mode (boot information for PXE clients only, never an address). Not thread-safe: one
/// strand owns it.
class Engine {
 public:
  /// Validates the configuration; `clock` and `sink` must outlive the engine.
  static Result<Engine> create(EngineConfig config, const Clock& clock, events::Sink& sink);

  /// Loads the leases a store gave back at start-up.
  void restore(const std::vector<Lease>& leases);

  /// Handles one packet. Never throws; malformed packets are ignored with a reason.
  Outcome handle(const Inbound& in);

  [[nodiscard]] const EngineConfig& config() const noexcept { return config_; }
  /// The address a client currently holds (bound and not expired), for tests and status.
  [[nodiscard]] std::optional<wire::Ipv4> bound_address(const std::string& client_key) const;
  /// Active bindings (offered or bound, not expired).
  [[nodiscard]] std::size_t active_count() const;
  /// Active bindings per configured subnet (index of EngineConfig::subnets); one pass over
  /// the bindings, for the metrics' periodic refresh.
  [[nodiscard]] std::vector<std::size_t> active_by_subnet() const;
  /// The subnet of the segment a packet came from (its index in EngineConfig::subnets), as
  /// handle() chooses it; nullopt in proxy mode or when none matches.
  [[nodiscard]] std::optional<std::size_t> subnet_index(const Inbound& in) const;

 private:
  enum class State : std::uint8_t { offered, bound, declined };
  struct Binding {
    std::string client;
    std::string mac;
    State state = State::offered;
    std::chrono::system_clock::time_point expires;
  };

  Engine(EngineConfig config, const Clock& clock, events::Sink& sink);
  Outcome handle_full(const Inbound& in, wire::MessageType type);
  Outcome handle_proxy(const Inbound& in, wire::MessageType type);
  /// Proxy mode: records that the client's MAC uses `ip` (an 'observed' lease record).
  void observe(Outcome& out, const wire::Message& m, wire::Ipv4 ip) const;
  Outcome discover(const Inbound& in, const Subnet& subnet);
  Outcome request(const Inbound& in, const Subnet& subnet);
  Outcome decline(const Inbound& in);
  Outcome release(const Inbound& in);
  Outcome inform(const Inbound& in, const Subnet& subnet);

  const Subnet* select_subnet(const Inbound& in) const;
  const Reservation* reservation_for(const wire::Message& m) const;
  [[nodiscard]] bool usable_by(wire::Ipv4 ip, const std::string& client,
                               std::chrono::system_clock::time_point now) const;
  std::optional<wire::Ipv4> allocate(const Subnet& subnet, std::size_t index,
                                     const std::string& client, const wire::Message& m,
                                     std::chrono::system_clock::time_point now);
  void bind(wire::Ipv4 ip, const std::string& client, const std::string& mac, State state,
            std::chrono::system_clock::time_point expires);
  void unbind(wire::Ipv4 ip);

  wire::Message reply_base(const wire::Message& req, wire::MessageType type) const;
  void add_config_options(wire::Message& reply, const wire::Message& req, const Subnet& subnet,
                          const Reservation* reservation) const;
  void add_boot(wire::Message& reply, const BootDecision& boot) const;
  static Outbound address(const wire::Message& req, wire::Message reply, bool nak);
  void emit(events::Kind kind, const wire::Message& m, wire::Ipv4 ip,
            std::vector<std::pair<std::string, std::string>> detail = {}) const;

  EngineConfig config_;
  const Clock* clock_;
  events::Sink* sink_;
  std::unordered_map<std::uint32_t, Binding> by_ip_;
  std::unordered_map<std::string, std::uint32_t> by_client_;
  std::unordered_map<std::string, Reservation> reservations_;  // by MAC
  std::unordered_set<std::uint32_t> reserved_ips_;
  std::vector<std::uint32_t> cursor_;  // per subnet: where the next free-address search starts
};

}  // namespace lab::pxe::dhcp::engine

template <>
struct boost::system::is_error_code_enum<lab::pxe::dhcp::engine::EngineError> : std::true_type {};
