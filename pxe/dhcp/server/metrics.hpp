#pragma once

#include "pxe/dhcp/engine/engine.hpp"
#include "pxe/dhcp/wire/message.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

namespace lab::shared::metrics {
class Counter;
class Gauge;
class Histogram;
class Registry;
}  // namespace lab::shared::metrics

namespace lab::pxe::dhcp::server {

/// Why a packet got no answer, as the metrics name it.
enum class Drop : std::uint8_t { malformed, ignored, send_failed, commit_failed };

/// The DHCP server's figures in a metrics registry: messages received and replies sent by type
/// and subnet, packets dropped by reason, pool sizes and addresses in use per subnet, and the
/// lease journal's commit latency. Every counter is resolved once here, so the packet path
/// only increments atomics. Used on the server's strand.
class Metrics {
 public:
  Metrics(shared::metrics::Registry& registry, const engine::EngineConfig& config);

  /// `subnet` indexes EngineConfig::subnets; nullopt when no subnet matched (or proxy mode).
  void received(std::optional<std::size_t> subnet, wire::MessageType type) noexcept;
  void sent(std::optional<std::size_t> subnet, wire::MessageType type) noexcept;
  void dropped(Drop reason, std::uint64_t n = 1) noexcept;
  void commit_took(std::chrono::steady_clock::duration took) noexcept;
  /// Addresses offered or leased now, per subnet (Engine::active_by_subnet()).
  void in_use(const std::vector<std::size_t>& per_subnet) noexcept;

 private:
  static constexpr std::size_t kTypes = 9;  // MessageType values 1..8, indexed directly
  struct PerSubnet {
    std::array<shared::metrics::Counter*, kTypes> received{};
    std::array<shared::metrics::Counter*, kTypes> sent{};
    shared::metrics::Gauge* in_use = nullptr;
  };
  PerSubnet& slot(std::optional<std::size_t> subnet) noexcept;

  std::vector<PerSubnet> subnets_;  // one per configured subnet, then "none"
  std::array<shared::metrics::Counter*, 4> dropped_{};
  shared::metrics::Histogram* commit_ = nullptr;
};

}  // namespace lab::pxe::dhcp::server
