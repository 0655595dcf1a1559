// `lab serve` wiring of the DHCP server: configuration keys, mode selection (full, proxy, or
// auto after probing for another DHCP server), the lease journal and the socket server.
#include "bootstrap/serve/component.hpp"
#include "bootstrap/serve/services.hpp"
#include "pxe/dhcp/engine/engine.hpp"
#include "pxe/dhcp/engine/lease_index.hpp"
#include "pxe/dhcp/engine/lease_store.hpp"
#include "pxe/dhcp/server/server.hpp"
#include "pxe/events/event.hpp"
#include "shared/log/log.hpp"

#include <cctype>
#include <chrono>

namespace lab::bootstrap::serve {
namespace {

namespace dhcp = pxe::dhcp;
using dhcp::wire::Ipv4;
using shared::log::Logger;

Result<Ipv4> parse_ip(const std::string& text, const std::string& key) {
  auto ip = Ipv4::parse(text);
  if (!ip)
    return Error(dhcp::engine::EngineError::bad_subnet,
                 key + ": '" + text + "' is not an IPv4 address");
  return *ip;
}

Result<std::vector<dhcp::engine::Subnet>> subnets_from(const shared::config::Config& config) {
  std::vector<dhcp::engine::Subnet> out;
  for (const auto& t : config.tables("dhcp.subnets")) {
    auto s = dhcp::engine::Subnet::parse_cidr(t.string("subnet"));
    if (!s)
      return Error(dhcp::engine::EngineError::bad_subnet,
                   "dhcp.subnets: '" + t.string("subnet") + "' is not a network like 10.0.0.0/24");
    LAB_TRY_ASSIGN(s->range_start, parse_ip(t.string("range_start"), "dhcp.subnets.range_start"));
    LAB_TRY_ASSIGN(s->range_end, parse_ip(t.string("range_end"), "dhcp.subnets.range_end"));
    if (!t.string("router").empty()) {
      LAB_TRY_ASSIGN(s->router, parse_ip(t.string("router"), "dhcp.subnets.router"));
    }
    for (const auto& d : t.strings("dns")) {
      LAB_TRY_ASSIGN(auto ip, parse_ip(d, "dhcp.subnets.dns"));
      s->dns.push_back(ip);
    }
    s->lease_time = t.duration("lease_time");
    out.push_back(*s);
  }
  return out;
}

class DhcpComponent final : public Component {
 public:
  DhcpComponent(Runtime& runtime, Services& services) : runtime_(runtime), services_(services) {
    services_.leases = &index_;
  }

  [[nodiscard]] std::string_view name() const override { return "dhcp"; }

  Result<void> start() override {
    const auto& c = runtime_.config;
    const std::string& interface = c.string("dhcp.interface");
    const auto port = static_cast<std::uint16_t>(c.integer("dhcp.port"));

    dhcp::engine::EngineConfig ec;
    if (!c.string("dhcp.server_ip").empty()) {
      LAB_TRY_ASSIGN(ec.server_ip, parse_ip(c.string("dhcp.server_ip"), "dhcp.server_ip"));
    } else {
      LAB_TRY_ASSIGN(ec.server_ip, dhcp::server::interface_address(interface));
    }
    LAB_TRY_ASSIGN(ec.subnets, subnets_from(c));
    for (const auto& t : c.tables("dhcp.reservations")) {
      LAB_TRY_ASSIGN(auto ip, parse_ip(t.string("ip"), "dhcp.reservations.ip"));
      std::string mac = t.string("mac");
      for (auto& ch : mac)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      ec.reservations.push_back({mac, ip, t.string("hostname")});
    }
    ec.boot.boot_url = c.string("dhcp.boot_url").empty()
                           ? "http://" + ec.server_ip.to_string() + ":8080/boot/boot.ipxe"
                           : c.string("dhcp.boot_url");
    ec.boot.bios_file = c.string("dhcp.bios_file");
    ec.boot.uefi_x64_file = c.string("dhcp.uefi_x64_file");
    ec.boot.uefi_arm64_file = c.string("dhcp.uefi_arm64_file");
    log_.warn(
        "ARM64 UEFI clients are sent dhcp.uefi_arm64_file, which you must provide: "
        "Debian's ipxe package ships no ARM64 build",
        {{"file", ec.boot.uefi_arm64_file}});

    ec.offer_hold = c.duration("dhcp.offer_hold");
    const std::string& mode = c.string("dhcp.mode");
    ec.mode = mode == "proxy" ? dhcp::engine::Mode::proxy : dhcp::engine::Mode::full;
    if (mode != "proxy" && c.boolean("dhcp.conflict_probe")) {
      auto other = dhcp::server::probe_other_server(interface, port, c.duration("dhcp.probe_wait"));
      if (!other) {
        log_.warn("could not probe for another DHCP server", {{"error", other.error().message()}});
      } else if (*other) {
        if (mode == "auto") {
          log_.warn(
              "another DHCP server answers on this segment; serving boot information "
              "only (proxy mode)",
              {{"other_server", (*other)->to_string()}, {"interface", interface}});
          ec.mode = dhcp::engine::Mode::proxy;
        } else {
          log_.warn("another DHCP server answers on this segment; clients may get two offers",
                    {{"other_server", (*other)->to_string()}, {"interface", interface}});
        }
      }
    }
    if (ec.mode == dhcp::engine::Mode::full && ec.subnets.empty())
      return Error(dhcp::engine::EngineError::no_subnet,
                   "full mode needs at least one [[dhcp.subnets]] (or set dhcp.mode = \"proxy\")");

    std::filesystem::path lease_file = c.string("dhcp.lease_file");
    if (lease_file.empty())
      lease_file = runtime_.data_dir / "dhcp-leases";
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    const auto durability = c.boolean("dhcp.lease_sync")
                                ? dhcp::engine::JournalLeaseStore::Durability::fdatasync
                                : dhcp::engine::JournalLeaseStore::Durability::write;
    LAB_TRY_ASSIGN(journal_, dhcp::engine::JournalLeaseStore::open(lease_file, now, durability));
    store_ = std::make_unique<dhcp::engine::IndexedLeaseStore>(*journal_, index_);
    if (journal_->recovered_dropped() > 0)
      log_.warn(
          "lease journal had records that do not decode (corrupt, or a torn last write); "
          "skipped them and kept every other lease",
          {{"file", lease_file.string()}, {"skipped", journal_->recovered_dropped()}});

    pxe::events::Sink* sink =
        services_.boot_events != nullptr ? services_.boot_events : &null_sink_;
    LAB_TRY_ASSIGN(auto engine, dhcp::engine::Engine::create(std::move(ec), clock_, *sink));
    engine_ = std::make_unique<dhcp::engine::Engine>(std::move(engine));
    LAB_TRY_ASSIGN(auto leases, store_->load());
    engine_->restore(leases);

    dhcp::server::ServerOptions so;
    so.interface = interface;
    so.port = port;
    so.proxy_port = engine_->config().mode == dhcp::engine::Mode::proxy;
    so.proxy_port_number = static_cast<std::uint16_t>(c.integer("dhcp.proxy_port"));
    so.metrics = &runtime_.metrics;
    LAB_TRY_ASSIGN(server_, dhcp::server::Server::start(runtime_.io, *engine_, *store_, so));
    log_.info("serving", {{"mode", so.proxy_port ? "proxy" : "full"},
                          {"interface", interface.empty() ? "*" : interface},
                          {"server_ip", engine_->config().server_ip.to_string()},
                          {"port", port},
                          {"leases", leases.size()},
                          {"lease_file", lease_file.string()}});
    return {};
  }

  void stop(std::function<void()> stopped) override {
    if (server_)
      server_->stop(std::move(stopped));
    else
      stopped();
  }

 private:
  Runtime& runtime_;
  Services& services_;
  Logger log_{"dhcp"};
  dhcp::engine::SystemClock clock_;
  pxe::events::NullSink null_sink_;
  // Declared in dependency order: the server goes first, then the engine, then the store.
  dhcp::engine::LeaseIndex index_{[] {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }};
  std::unique_ptr<dhcp::engine::JournalLeaseStore> journal_;
  std::unique_ptr<dhcp::engine::IndexedLeaseStore> store_;
  std::unique_ptr<dhcp::engine::Engine> engine_;
  std::unique_ptr<dhcp::server::Server> server_;
};

}  // namespace

ComponentSpec dhcp_component() {
  return ComponentSpec{
      .name = "dhcp",
      .declare_config =
          [](shared::config::Schema& s) {
            shared::config::Schema subnet;
            subnet.string("subnet", "", "network in CIDR form: 10.0.0.0/24")
                .string("range_start", "", "first address handed out")
                .string("range_end", "", "last address handed out")
                .string("router", "", "default gateway (option 3); empty: none")
                .strings("dns", {}, "DNS servers (option 6)")
                .duration("lease_time", std::chrono::hours(1), "lease time");
            shared::config::Schema reservation;
            reservation.string("mac", "", "hardware address: 52:54:00:12:34:56")
                .string("ip", "", "the address this MAC always gets")
                .string("hostname", "", "host name sent in option 12");
            s.boolean("dhcp.enabled", false, "run the DHCP server")
                .choice("dhcp.mode", "auto", {"full", "proxy", "auto"},
                        "full: addresses and boot info; proxy: boot info only beside another "
                        "DHCP server; auto: full unless another server answers a probe")
                .string("dhcp.interface", "", "interface to serve (SO_BINDTODEVICE); empty: all")
                .string("dhcp.server_ip", "",
                        "this server's address (option 54, TFTP server); empty: the interface's")
                .tables("dhcp.subnets", subnet, "address pools, one per subnet")
                .tables("dhcp.reservations", reservation, "fixed addresses by MAC")
                .duration("dhcp.offer_hold", std::chrono::seconds(30),
                          "how long an offered address is kept for the client's REQUEST")
                .string("dhcp.boot_url", "",
                        "iPXE script URL; empty: http://<server-ip>:8080/boot/boot.ipxe")
                .string("dhcp.bios_file", "undionly.kpxe", "boot file for BIOS PXE (arch 0)")
                .string("dhcp.uefi_x64_file", "ipxe.efi",
                        "boot file for x86-64 UEFI (arch 7, 9); snponly.efi is the alternative")
                .string("dhcp.uefi_arm64_file", "ipxe-arm64.efi",
                        "boot file for ARM64 UEFI (arch 11); not in Debian's ipxe package")
                .integer("dhcp.port", 67, "DHCP server port (the client port is one above)", 1,
                         65534)
                .integer("dhcp.proxy_port", 4011, "PXE boot server port in proxy mode", 1, 65535)
                .boolean("dhcp.conflict_probe", true,
                         "probe for another DHCP server at start-up (full and auto mode)")
                .duration("dhcp.probe_wait", std::chrono::seconds(3),
                          "how long the start-up probe waits for an OFFER (servers that ping "
                          "an address before offering it take up to 3 s)")
                .string("dhcp.lease_file", "", "lease journal; empty: <data_dir>/dhcp-leases")
                .boolean("dhcp.lease_sync", true,
                         "fdatasync the lease journal before every ACK (survives a power loss); "
                         "false: written before the ACK, survives a crash of lab only");
          },
      .create = [](Runtime& runtime, Services& services) -> Result<std::unique_ptr<Component>> {
        if (!runtime.config.boolean("dhcp.enabled"))
          return std::unique_ptr<Component>();
        return std::unique_ptr<Component>(std::make_unique<DhcpComponent>(runtime, services));
      }};
}

}  // namespace lab::bootstrap::serve
