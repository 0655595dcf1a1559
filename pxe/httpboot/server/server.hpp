#pragma once

#include "pxe/httpboot/script.hpp"
#include "pxe/recorder/recorder.hpp"
#include "pxe/registry/registry.hpp"
#include "shared/errors/error.hpp"
#include "shared/http/server/server.hpp"
#include "shared/ratelimit/limiter.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

namespace boost::asio {
class io_context;
class thread_pool;
}  // namespace boost::asio

namespace lab::shared::metrics {
class Registry;
}

namespace lab::pxe::httpboot {

struct ServerOptions {
  std::string address = "0.0.0.0";
  std::uint16_t port = 8080;   // 0 picks a free port
  std::filesystem::path root;  // boot files, served under /files/
  ProfileSet profiles;
  std::chrono::seconds token_ttl{600};
  /// Boot tokens being minted at once; past this, script requests get 503 (a flood of script
  /// requests must not queue unbounded store writes).
  std::size_t max_pending_mints = 64;
  /// Clients remembered by the address their script request came from, to attribute file
  /// fetches when DHCP is not ours (oldest forgotten first).
  std::size_t max_script_clients = 4096;
  /// Script requests an address may have refused (no lease, wrong address, no profile) before
  /// it is answered 429 with Retry-After.
  shared::ratelimit::LimiterOptions refusals;
  shared::http::Limits limits;
  /// Where the server's figures go (lab_httpboot_*); null: none. Must outlive the server.
  shared::metrics::Registry* metrics = nullptr;
};

/// The HTTP boot server (plain HTTP, as iPXE and UEFI HTTP boot speak it):
///   GET  /boot/boot.ipxe       the generic script; chains to /boot/${netX/mac}.ipxe
///   GET  /boot/<mac>.ipxe      the machine's script (MAC with ':' or '-' or bare, any case);
///                              a profile that needs a boot token gets the MAC's one live
///                              token, bound to the MAC and to the address `leases` (this
///                              appliance's DHCP) or the registry (`lab machine register`)
///                              has for it: 403 when there is no such address or another one
///                              asks; 404 when no profile applies; 429 for an address with
///                              too many refusals
///   GET|HEAD /boot/<path>      boot files under `root` (iPXE binaries, kernels, initrds), with
///                              Range, ETag/If-None-Match and Last-Modified, streamed with
///                              sendfile, never read into memory
///   POST /boot/progress        `labd boot`'s steps {"mac","stage","detail"} → 204, recorded as
///                              agent_boot; 403 unless the caller has the address DHCP gave
///                              that MAC (or, without our DHCP, fetched its script from);
///                              400 on a bad body, 429 past a per-MAC rate
/// Every script served or refused and every file fetched is recorded in `recorder`.
/// `registry` may be null (coordinator disabled): every machine is unknown and boots the
/// discovery profile; its script says on the console that it carries no token, and a profile
/// that needs one ({token}, {join}) gets 500 naming the missing registry.
class Server {
 public:
  /// `leases` may be null (no DHCP server of ours): only registered machines get tokens then.
  Server(boost::asio::io_context& io, boost::asio::thread_pool& blocking, ServerOptions options,
         recorder::Recorder& recorder, registry::Registry* registry,
         const registry::Leases* leases = nullptr);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  /// Opens the root and binds; returns the bound port.
  Result<std::uint16_t> start();
  /// Stops accepting and calls `stopped` on the io_context once requests in flight are done.
  void stop(std::function<void()> stopped);
  /// "http://<address>:<bound port>" after start().
  [[nodiscard]] std::string url() const;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace lab::pxe::httpboot
