#include "pxe/tftp/engine/transfer.hpp"

#include <algorithm>
#include <charconv>

namespace lab::pxe::tftp::engine {
namespace {

const char* message_of(EngineError e) noexcept {
  switch (e) {
    case EngineError::client_error:
      return "client sent an error";
    case EngineError::timed_out:
      return "client stopped answering";
    case EngineError::read_failed:
      return "reading the file failed";
    case EngineError::illegal_packet:
      return "packet not valid in a read transfer";
    case EngineError::client_gone:
      return "client port unreachable";
    case EngineError::time_limit:
      return "transfer exceeded its time limit";
  }
  return "unknown engine error";
}

// The wire layer has checked that known numeric options are decimals that fit 32 bits.
std::optional<std::uint64_t> number(std::string_view text) {
  std::uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size())
    return std::nullopt;
  return v;
}

}  // namespace

const boost::system::error_category& engine_category() noexcept {
  static const ErrorCategory<EngineError> kCategory("lab.tftp.engine", &message_of);
  return kCategory;
}

std::vector<std::uint8_t> to_netascii(std::span<const std::uint8_t> bytes) {
  std::vector<std::uint8_t> out;
  out.reserve(bytes.size() + bytes.size() / 16);
  for (const std::uint8_t b : bytes) {
    if (b == '\n') {
      out.push_back('\r');
      out.push_back('\n');
    } else if (b == '\r') {
      out.push_back('\r');
      out.push_back(0);
    } else {
      out.push_back(b);
    }
  }
  return out;
}

Negotiation negotiate(const wire::Request& request, std::uint64_t file_size,
                      const Settings& settings) {
  Negotiation n;
  n.timeout = settings.timeout;
  const std::size_t max_blksize =
      std::clamp<std::size_t>(settings.max_blksize, 8, wire::kMaxBlockSize);
  const std::uint16_t max_window = std::max<std::uint16_t>(settings.max_windowsize, 1);
  // Answer in the order the client asked, as most servers do.
  for (const auto& o : request.options) {
    const auto v = number(o.value);
    if (!v)
      continue;  // unknown option with a non-numeric value: not ours
    if (o.name == "blksize") {
      if (*v < 8)
        continue;
      n.blksize = static_cast<std::size_t>(std::min<std::uint64_t>(*v, max_blksize));
      n.oack.push_back({"blksize", std::to_string(n.blksize)});
    } else if (o.name == "windowsize") {
      if (*v < 1)
        continue;
      n.windowsize = static_cast<std::uint16_t>(std::min<std::uint64_t>(*v, max_window));
      n.oack.push_back({"windowsize", std::to_string(n.windowsize)});
    } else if (o.name == "timeout") {
      if (*v < 1 || *v > 255)
        continue;
      n.timeout = std::chrono::seconds(*v);
      n.oack.push_back({"timeout", std::to_string(*v)});
    } else if (o.name == "tsize") {
      n.oack.push_back({"tsize", std::to_string(file_size)});
    }
  }
  return n;
}

Transfer::Transfer(const wire::Request& request, std::unique_ptr<FileSource> file,
                   const Settings& settings)
    : file_(std::move(file)), settings_(settings), size_(file_->size()) {
  negotiation_ = negotiate(request, size_, settings_);
  // A file that is an exact multiple of the block size ends with an empty block.
  total_blocks_ = size_ / negotiation_.blksize + 1;
  interval_ = negotiation_.timeout;
  data_buf_.resize(static_cast<std::size_t>(negotiation_.windowsize) * (negotiation_.blksize + 4));
  outgoing_.reserve(negotiation_.windowsize);
}

std::uint64_t Transfer::bytes_acked() const noexcept {
  return std::min<std::uint64_t>(acked_ * negotiation_.blksize, size_);
}

void Transfer::clear_outgoing() {
  outgoing_.clear();
}

void Transfer::start(TimePoint now) {
  clear_outgoing();
  if (state_ != State::idle)
    return;
  ends_by_ = now + settings_.max_transfer_time;
  if (!negotiation_.oack.empty()) {
    state_ = State::oack_sent;
    send_control(wire::OAck{negotiation_.oack});
    oack_sent_at_ = now;
    deadline_ = now + interval_;
    return;
  }
  state_ = State::sending;
  send_window(now);
}

void Transfer::send_control(const wire::Packet& p) {
  control_buf_ = wire::serialize(p);
  outgoing_.emplace_back(control_buf_);
}

void Transfer::fail(EngineError e, std::string detail, std::optional<wire::ErrorPacket> tell) {
  state_ = State::failed;
  error_ = Error(e, std::move(detail));
  if (tell)
    send_control(*tell);
}

bool Transfer::fail_if_too_long(TimePoint now) {
  if (finished() || now < ends_by_)
    return false;
  clear_outgoing();  // no more DATA before the ERROR
  fail(EngineError::time_limit,
       "still running after " +
           std::to_string(
               std::chrono::duration_cast<std::chrono::seconds>(settings_.max_transfer_time)
                   .count()) +
           " s",
       wire::ErrorPacket{static_cast<std::uint16_t>(wire::ErrorCode::not_defined),
                         "transfer time limit reached"});
  return true;
}

// Go-back-N (RFC 7440): every send starts right after the highest acknowledged block and fills
// the window, so a lost block, a lost ACK and a timeout all recover the same way.
void Transfer::send_window(TimePoint now) {
  const std::uint64_t first = acked_ + 1;
  const std::uint64_t last = std::min(total_blocks_, acked_ + negotiation_.windowsize);
  std::uint8_t* p = data_buf_.data();
  for (std::uint64_t b = first; b <= last; ++b) {
    const std::uint64_t offset = (b - 1) * negotiation_.blksize;
    std::size_t n = 0;
    if (offset < size_) {
      auto r = file_->read(offset, {p + 4, negotiation_.blksize});
      if (!r) {
        clear_outgoing();
        fail(EngineError::read_failed, r.error().message(),
             wire::ErrorPacket{static_cast<std::uint16_t>(wire::ErrorCode::not_defined),
                               "read error"});
        return;
      }
      n = *r;
      const std::uint64_t expected = std::min<std::uint64_t>(negotiation_.blksize, size_ - offset);
      if (n != expected) {
        // The file shrank under us: a short block in the middle would end the transfer early
        // with wrong content, so stop instead.
        clear_outgoing();
        fail(EngineError::read_failed, "file changed size during the transfer",
             wire::ErrorPacket{static_cast<std::uint16_t>(wire::ErrorCode::not_defined),
                               "file changed"});
        return;
      }
    }
    // Block numbers wrap from 65535 to 0, as tftp-hpa, atftp, curl and iPXE expect.
    wire::write_data_header(std::span<std::uint8_t, 4>(p, 4), static_cast<std::uint16_t>(b));
    outgoing_.emplace_back(p, n + 4);
    if (b <= sent_max_)
      ++retransmissions_;
    p += n + 4;
  }
  sent_max_ = std::max(sent_max_, last);
  deadline_ = now + interval_;
}

// The client acknowledged something new: retransmission starts over from the base timeout.
void Transfer::progress() {
  retries_ = 0;
  interval_ = negotiation_.timeout;
}

void Transfer::on_datagram(std::span<const std::uint8_t> bytes, TimePoint now) {
  clear_outgoing();
  if (finished() || state_ == State::idle)
    return;
  auto parsed = wire::parse(bytes);
  if (!parsed)
    return;  // a corrupt datagram is treated like a lost one
  if (const auto* ack = std::get_if<wire::Ack>(&*parsed)) {
    on_ack(ack->block, now);
    (void)fail_if_too_long(now);
    return;
  }
  if (const auto* err = std::get_if<wire::ErrorPacket>(&*parsed)) {
    fail(EngineError::client_error,
         "code " + std::to_string(err->code) + (err->message.empty() ? "" : ": " + err->message),
         std::nullopt);
    return;
  }
  fail(EngineError::illegal_packet, "unexpected packet during a read transfer",
       wire::ErrorPacket{static_cast<std::uint16_t>(wire::ErrorCode::illegal_operation),
                         "illegal TFTP operation"});
}

void Transfer::on_ack(std::uint16_t block, TimePoint now) {
  if (state_ == State::oack_sent) {
    if (block != 0)
      return;  // only ACK 0 acknowledges the OACK
    state_ = State::sending;
    progress();
    send_window(now);
    return;
  }
  // Map the 16-bit block number onto the blocks in flight: [acked_, sent_max_]. A window is at
  // most 64 blocks, so the mapping is unique across rollover. Anything else is an old ACK that
  // arrived late: ignore it.
  const auto diff = static_cast<std::uint16_t>(block - static_cast<std::uint16_t>(acked_));
  if (diff > sent_max_ - acked_)
    return;
  const std::uint64_t b = acked_ + diff;
  if (b > acked_) {
    acked_ = b;
    progress();
    rewound_ = false;
    if (acked_ == total_blocks_) {
      state_ = State::done;
      return;
    }
    // A full window acknowledged: the next one. An ACK inside the window: the client lost the
    // block after it, so go back and send from there.
    send_window(now);
    return;
  }
  // A duplicate ACK of the last acknowledged block. In lock-step (windowsize 1) answering it
  // would double every later block (the Sorcerer's Apprentice bug, RFC 1123 4.2.3.1): the timer
  // recovers instead. With a window it tells that the block after it was lost again; go back
  // once per acknowledged position, so duplicates never multiply.
  if (negotiation_.windowsize > 1 && (!rewound_ || rewound_at_ != acked_)) {
    rewound_ = true;
    rewound_at_ = acked_;
    send_window(now);
  }
}

void Transfer::on_client_gone() {
  clear_outgoing();
  if (finished())
    return;
  fail(EngineError::client_gone, "ICMP port unreachable from the client", std::nullopt);
}

void Transfer::on_timer(TimePoint now) {
  clear_outgoing();
  if (finished() || state_ == State::idle || fail_if_too_long(now) || now < deadline_)
    return;
  if (++retries_ > settings_.max_retries) {
    fail(EngineError::timed_out,
         "no answer after " + std::to_string(settings_.max_retries) + " timeouts",
         wire::ErrorPacket{static_cast<std::uint16_t>(wire::ErrorCode::not_defined), "timed out"});
    return;
  }
  interval_ = std::min(interval_ * 2, std::max(settings_.max_timeout, negotiation_.timeout));
  if (state_ == State::oack_sent) {
    // A client that lost the OACK repeats its RRQ (on_repeated_request answers it); one that
    // lost its ACK 0 may repeat that first, and must not see a second OACK before.
    if (now - oack_sent_at_ >= settings_.oack_quiet) {
      send_control(wire::OAck{negotiation_.oack});
      ++retransmissions_;
      oack_sent_at_ = now;
    }
    deadline_ = now + interval_;
    return;
  }
  send_window(now);
}

void Transfer::on_repeated_request(TimePoint now) {
  clear_outgoing();
  if (state_ == State::oack_sent) {
    send_control(wire::OAck{negotiation_.oack});
    ++retransmissions_;
    oack_sent_at_ = now;
    deadline_ = now + interval_;
    return;
  }
  // Without options the first window answers the request; it was lost if nothing of it has
  // been acknowledged yet.
  if (state_ == State::sending && acked_ == 0 && negotiation_.oack.empty())
    send_window(now);
}

}  // namespace lab::pxe::tftp::engine
