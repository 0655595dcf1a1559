// DHCPv4 codec and engine: never crashes on any packet; what parses survives parse →
// serialize → parse unchanged, and the engine answers it without throwing.
#include "pxe/dhcp/engine/engine.hpp"
#include "pxe/dhcp/wire/message.hpp"

#include <cstdint>
#include <cstdlib>
#include <span>

namespace {

using namespace lab::pxe::dhcp;

class FixedClock final : public engine::Clock {
 public:
  [[nodiscard]] std::chrono::system_clock::time_point now() const override {
    return std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
  }
};

engine::EngineConfig config(engine::Mode mode) {
  engine::EngineConfig c;
  c.mode = mode;
  c.server_ip = *wire::Ipv4::parse("10.0.0.1");
  auto s = *engine::Subnet::parse_cidr("10.0.0.0/24");
  s.range_start = *wire::Ipv4::parse("10.0.0.10");
  s.range_end = *wire::Ipv4::parse("10.0.0.20");
  c.subnets = {s};
  c.boot.boot_url = "http://10.0.0.1:8080/boot/boot.ipxe";
  return c;
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's entry point
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto m = wire::parse(std::span<const std::uint8_t>(data, size));
  if (!m)
    return 0;
  (void)wire::client_arch(*m);
  (void)wire::user_classes(*m);
  if (const auto* o = m->find(wire::opt::kRelayAgentInfo))
    (void)wire::parse_suboptions(o->data);
  auto bytes = wire::serialize(*m, wire::kMaxPacket);
  if (bytes) {
    auto again = wire::parse(*bytes);
    if (!again || !(*again == *m))
      std::abort();
  } else if (bytes.error() != wire::WireError::too_large) {
    std::abort();
  }
  static FixedClock clock;
  static lab::pxe::events::NullSink sink;
  for (auto mode : {engine::Mode::full, engine::Mode::proxy}) {
    auto e = engine::Engine::create(config(mode), clock, sink);
    if (!e)
      std::abort();
    // The xid's low bit picks the port the packet came in on, so 4011 is reached as well.
    engine::Inbound in{
        .message = *m, .source = {}, .source_port = 68, .proxy_port = (m->xid & 1U) != 0};
    auto out = e->handle(in);
    if (out.reply && !wire::serialize(out.reply->message, wire::kMaxPacket))
      std::abort();
  }
  return 0;
}
