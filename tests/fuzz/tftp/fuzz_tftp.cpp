// TFTP codec and transfer engine: never crash on any datagram. What parses survives parse →
// serialize → parse unchanged; a request drives a transfer; and the input, cut into datagrams,
// drives a windowed transfer through ACKs, duplicates, errors and timeouts.
#include "pxe/tftp/engine/transfer.hpp"
#include "pxe/tftp/wire/packet.hpp"

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <vector>

namespace {

using namespace lab::pxe::tftp;

std::unique_ptr<engine::FileSource> file(std::size_t size) {
  auto bytes = std::make_shared<std::vector<std::uint8_t>>(size);
  for (std::size_t i = 0; i < size; ++i)
    (*bytes)[i] = static_cast<std::uint8_t>(i * 7);
  return std::make_unique<engine::MemorySource>(std::move(bytes));
}

// Everything a transfer sends must be a packet the codec reads back.
void check_outgoing(const engine::Transfer& t) {
  for (const auto& d : t.outgoing()) {
    auto p = wire::parse(d);
    if (!p)
      std::abort();
    if (const auto* data = std::get_if<wire::Data>(&*p);
        data != nullptr && data->payload.size() > t.negotiation().blksize) {
      std::abort();
    }
  }
  if (t.bytes_acked() > t.file_size())
    std::abort();
}

void drive_to_end(engine::Transfer& t, engine::TimePoint now) {
  // Bounded: every timeout either retransmits (at most max_retries times) or fails.
  for (int i = 0; i < 20 && !t.finished(); ++i) {
    now = t.deadline();
    t.on_timer(now);
    check_outgoing(t);
  }
  if (!t.finished())
    std::abort();
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's entry point
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  engine::Settings settings;
  settings.max_retries = 3;
  const engine::TimePoint t0{};

  auto packet = wire::parse(input);
  if (packet) {
    auto again = wire::parse(wire::serialize(*packet));
    if (!again || !(*again == *packet))
      std::abort();
    if (const auto* request = std::get_if<wire::Request>(&*packet)) {
      engine::Transfer t(*request, file(size * 13 % 5000), settings);
      t.start(t0);
      check_outgoing(t);
      t.on_datagram(input, t0);
      check_outgoing(t);
      drive_to_end(t, t0);
    }
  }

  // A windowed transfer of a few blocks (with rollover impossible to reach here, the block
  // mapping is still exercised by arbitrary 16-bit ACK numbers), fed the input in 4-byte slices.
  const wire::Request request{wire::Opcode::rrq,
                              "f",
                              wire::Mode::octet,
                              {{"blksize", "8"}, {"windowsize", "4"}, {"tsize", "0"}}};
  engine::Transfer t(request, file(100), settings);
  engine::TimePoint now = t0;
  t.start(now);
  check_outgoing(t);
  for (std::size_t off = 0; off < size && !t.finished(); off += 4) {
    const auto slice = input.subspan(off, std::min<std::size_t>(4, size - off));
    now += std::chrono::milliseconds(slice[0]);
    if (now >= t.deadline())
      t.on_timer(now);
    else
      t.on_datagram(slice, now);
    check_outgoing(t);
  }
  drive_to_end(t, now);
  return 0;
}
