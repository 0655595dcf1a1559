#pragma once

#include "pxe/tftp/engine/file_source.hpp"
#include "pxe/tftp/wire/packet.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace lab::pxe::tftp::engine {

/// Why a transfer ended without the client acknowledging the last block.
enum class EngineError {
  client_error = 1,  // the client sent an ERROR (detail carries its code and message)
  timed_out,         // no answer after every retransmission
  read_failed,       // the file source failed
  illegal_packet,    // the client sent a packet that has no place in a read transfer
  client_gone,       // the client's port is closed (ICMP port unreachable)
  time_limit,        // still running after Settings::max_transfer_time
};
const boost::system::error_category& engine_category() noexcept;
inline boost::system::error_code make_error_code(EngineError e) noexcept {
  return {static_cast<int>(e), engine_category()};
}

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

/// Server-side limits applied to what a client asks for.
struct Settings {
  /// Largest block size granted; 1468 keeps a DATA packet inside a 1500-byte Ethernet MTU.
  std::size_t max_blksize = 1468;
  std::uint16_t max_windowsize = 64;
  /// Retransmission timeout when the client does not ask for one (RFC 2349 `timeout`).
  std::chrono::milliseconds timeout{1000};
  /// Every timeout without progress doubles the next one up to this (RFC 1123 4.2.3.2:
  /// exponential backoff). Clients that re-acknowledge only after a quiet spell (atftp waits
  /// 5 s without any datagram before it repeats a lost ACK) need the server to fall silent
  /// long enough; a window that is acknowledged again starts over at `timeout`.
  std::chrono::milliseconds max_timeout{8000};
  /// Timeouts without progress before giving up (with the defaults: 1+2+4+8+8+8 = 31 s).
  unsigned max_retries = 5;
  /// A timeout repeats the OACK only once the client has been silent this long since the last
  /// one. Clients disagree about a lost ACK 0: atftp repeats it after 5 s of silence and aborts
  /// on a second OACK ("unexpected OACK"); curl repeats it only after its whole-transfer retry
  /// time (72 s) and needs the OACK again. Waiting past 5 s serves both.
  std::chrono::milliseconds oack_quiet{6000};
  /// A transfer still running this long after start() is aborted with an ERROR, however
  /// steadily the client acknowledges: otherwise a client that acknowledges just often enough
  /// holds its slot for ever. TFTP carries only the iPXE binaries here (kernels and initrds go
  /// over HTTP), yet 10 minutes would carry a 300 MB initrd in lock-step 512-byte blocks at a
  /// 1 ms round trip.
  std::chrono::milliseconds max_transfer_time{std::chrono::minutes(10)};
};

/// What was agreed with the client, and which options go into the OACK.
struct Negotiation {
  std::size_t blksize = 512;
  std::uint16_t windowsize = 1;
  std::chrono::milliseconds timeout{1000};
  std::vector<wire::Option> oack;  // empty: no OACK, DATA block 1 answers the request
};

/// Applies RFC 2347/2348/2349/7440 to the request's options: blksize 8..65464 clamped to
/// `max_blksize`, windowsize ≥1 clamped to `max_windowsize`, timeout 1..255 s, tsize answered
/// with `file_size`. Values outside those ranges leave the option out of the OACK (the client
/// then uses the default), as RFC 2347 allows. Unknown options are ignored.
Negotiation negotiate(const wire::Request& request, std::uint64_t file_size,
                      const Settings& settings);

/// One read transfer (RRQ) seen from the server: a state machine fed with datagrams from the
/// client's TID and with timeouts. Time is passed in, never read, so tests drive it with a fake
/// clock. After each call, `outgoing()` holds the datagrams to send, in order; they stay valid
/// until the next call. Not thread-safe: one transfer is driven from one strand.
class Transfer {
 public:
  Transfer(const wire::Request& request, std::unique_ptr<FileSource> file,
           const Settings& settings);

  /// Sends the OACK, or the first window of DATA when no option was acknowledged.
  void start(TimePoint now);
  /// Handles one datagram from the client. Malformed datagrams are ignored. Past
  /// Settings::max_transfer_time the transfer fails (time_limit) unless the datagram was the
  /// ACK that completes it.
  void on_datagram(std::span<const std::uint8_t> bytes, TimePoint now);
  /// Retransmits when `now` has reached `deadline()`, or gives up after max_retries or
  /// Settings::max_transfer_time. The OACK is repeated only after Settings::oack_quiet of
  /// silence.
  void on_timer(TimePoint now);
  /// The client sent its request again from the same port: it has not heard from us (the OACK
  /// or, without options, the first window was lost), so that is sent again at once.
  void on_repeated_request(TimePoint now);
  /// The network says the client's port is closed: end now instead of retransmitting into it
  /// until the retries run out. Nothing is sent.
  void on_client_gone();

  /// Datagrams to send now.
  [[nodiscard]] std::span<const std::span<const std::uint8_t>> outgoing() const noexcept {
    return outgoing_;
  }
  /// When on_timer must be called next: the next retransmission or the time limit.
  [[nodiscard]] TimePoint deadline() const noexcept { return std::min(deadline_, ends_by_); }
  [[nodiscard]] bool finished() const noexcept { return state_ == State::done || failed(); }
  [[nodiscard]] bool succeeded() const noexcept { return state_ == State::done; }
  [[nodiscard]] bool failed() const noexcept { return state_ == State::failed; }
  /// Why the transfer failed; meaningful only when failed().
  [[nodiscard]] const Error& error() const noexcept { return error_; }

  [[nodiscard]] const Negotiation& negotiation() const noexcept { return negotiation_; }
  [[nodiscard]] std::uint64_t file_size() const noexcept { return size_; }
  /// Bytes the client has acknowledged.
  [[nodiscard]] std::uint64_t bytes_acked() const noexcept;
  /// DATA or OACK datagrams sent again after a timeout or a go-back.
  [[nodiscard]] std::uint64_t retransmissions() const noexcept { return retransmissions_; }

 private:
  enum class State { idle, oack_sent, sending, done, failed };
  void send_window(TimePoint now);
  void send_control(const wire::Packet& p);
  void fail(EngineError e, std::string detail, std::optional<wire::ErrorPacket> tell);
  bool fail_if_too_long(TimePoint now);
  void on_ack(std::uint16_t block, TimePoint now);
  void progress();
  void clear_outgoing();

  std::unique_ptr<FileSource> file_;
  Settings settings_;
  Negotiation negotiation_;
  std::uint64_t size_ = 0;
  std::uint64_t total_blocks_ = 0;  // including the final short (maybe empty) block
  State state_ = State::idle;
  std::uint64_t acked_ = 0;       // highest block acknowledged
  std::uint64_t sent_max_ = 0;    // highest block sent
  std::uint64_t rewound_at_ = 0;  // acked_ value a duplicate ACK already rewound for
  bool rewound_ = false;
  unsigned retries_ = 0;
  std::chrono::milliseconds interval_{};  // the retransmission timeout now in force
  TimePoint oack_sent_at_{};
  std::uint64_t retransmissions_ = 0;
  TimePoint deadline_{};
  TimePoint ends_by_ = TimePoint::max();  // start() + max_transfer_time
  Error error_;
  std::vector<std::uint8_t> data_buf_;  // one window of DATA datagrams
  std::vector<std::uint8_t> control_buf_;
  std::vector<std::span<const std::uint8_t>> outgoing_;
};

}  // namespace lab::pxe::tftp::engine

template <>
struct boost::system::is_error_code_enum<lab::pxe::tftp::engine::EngineError> : std::true_type {};
