#include "pxe/dhcp/server/metrics.hpp"

#include "shared/metrics/metrics.hpp"

#include <cctype>
#include <string>

namespace lab::pxe::dhcp::server {
namespace {

using wire::MessageType;

constexpr std::array kReceived = {MessageType::discover, MessageType::request, MessageType::decline,
                                  MessageType::release, MessageType::inform};
constexpr std::array kSent = {MessageType::offer, MessageType::ack, MessageType::nak};

// "discover", as Prometheus label values are usually written.
std::string type_label(MessageType t) {
  std::string out(wire::message_type_name(t));
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string subnet_label(const engine::Subnet& s) {
  return s.network.to_string() + "/" + std::to_string(s.prefix);
}

}  // namespace

Metrics::Metrics(shared::metrics::Registry& registry, const engine::EngineConfig& config) {
  auto& received = registry.counter(
      "lab_dhcp_received_total",
      "DHCP messages received, by message type and the subnet of the client's segment "
      "(\"none\": no configured subnet matched, or proxy mode).",
      {"type", "subnet"});
  auto& sent = registry.counter("lab_dhcp_sent_total",
                                "DHCP replies sent, by message type and subnet. An ACK counts "
                                "once its lease is durable.",
                                {"type", "subnet"});
  auto& size = registry.gauge("lab_dhcp_pool_addresses", "Addresses in the subnet's dynamic range.",
                              {"subnet"});
  auto& in_use = registry.gauge("lab_dhcp_pool_addresses_in_use",
                                "Addresses of the subnet offered or leased now (reservations "
                                "included), refreshed every few seconds.",
                                {"subnet"});
  auto& dropped = registry.counter(
      "lab_dhcp_dropped_total",
      "Packets that got no answer, by reason: malformed (did not parse), ignored (the engine "
      "declined, e.g. not for this server), send_failed, commit_failed (an ACK withheld "
      "because its lease could not be made durable).",
      {"reason"});
  commit_ = &registry
                 .histogram("lab_dhcp_lease_commit_seconds",
                            "Time from handing a batch of leases to the journal to it being "
                            "durable (one commit per received batch).",
                            {}, shared::metrics::latency_buckets())
                 .get();

  std::vector<std::string> labels;
  for (const auto& s : config.subnets)
    labels.push_back(subnet_label(s));
  labels.emplace_back("none");
  subnets_.resize(labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    auto& slot = subnets_[i];
    // A subnet's series exist from the start at zero, so rates and alerts see them at once.
    for (const auto t : kReceived) {
      slot.received[static_cast<std::size_t>(t)] = &received.with({type_label(t), labels[i]});
    }
    for (const auto t : kSent) {
      slot.sent[static_cast<std::size_t>(t)] = &sent.with({type_label(t), labels[i]});
    }
    if (i < config.subnets.size()) {
      const auto& s = config.subnets[i];
      size.with({labels[i]}).set(static_cast<double>(s.range_end.value - s.range_start.value + 1));
      slot.in_use = &in_use.with({labels[i]});
    }
  }
  const std::array<const char*, 4> reasons = {"malformed", "ignored", "send_failed",
                                              "commit_failed"};
  for (std::size_t i = 0; i < reasons.size(); ++i)
    dropped_[i] = &dropped.with({reasons[i]});
}

Metrics::PerSubnet& Metrics::slot(std::optional<std::size_t> subnet) noexcept {
  return subnet && *subnet + 1 < subnets_.size() ? subnets_[*subnet] : subnets_.back();
}

void Metrics::received(std::optional<std::size_t> subnet, MessageType type) noexcept {
  if (auto* c = slot(subnet).received[static_cast<std::size_t>(type) % kTypes])
    c->inc();
}

void Metrics::sent(std::optional<std::size_t> subnet, MessageType type) noexcept {
  if (auto* c = slot(subnet).sent[static_cast<std::size_t>(type) % kTypes])
    c->inc();
}

void Metrics::dropped(Drop reason, std::uint64_t n) noexcept {
  dropped_[static_cast<std::size_t>(reason)]->inc(n);
}

void Metrics::commit_took(std::chrono::steady_clock::duration took) noexcept {
  commit_->observe(std::chrono::duration<double>(took).count());
}

void Metrics::in_use(const std::vector<std::size_t>& per_subnet) noexcept {
  for (std::size_t i = 0; i < per_subnet.size() && i + 1 < subnets_.size(); ++i) {
    if (subnets_[i].in_use != nullptr)
      subnets_[i].in_use->set(static_cast<double>(per_subnet[i]));
  }
}

}  // namespace lab::pxe::dhcp::server
