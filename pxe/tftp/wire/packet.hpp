#pragma once

#include "shared/errors/error.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace lab::pxe::tftp::wire {

/// Why a packet was refused; one value per failure site, so a log line says where.
enum class WireError {
  too_short = 1,              // fewer than the 2 bytes of an opcode
  unknown_opcode,             // opcode outside 1..6
  filename_unterminated,      // RRQ/WRQ filename without its NUL
  filename_empty,             // RRQ/WRQ with an empty filename
  filename_too_long,          // filename longer than kMaxFilename
  mode_unterminated,          // RRQ/WRQ mode without its NUL
  mode_unknown,               // mode other than octet/netascii/mail
  option_name_unterminated,   // an option name without its NUL
  option_value_missing,       // an option name with no value after it
  option_value_unterminated,  // an option value without its NUL
  option_name_empty,          // an empty option name where one is required
  option_duplicate,           // the same option twice (names compare case-insensitively)
  option_value_invalid,       // a known numeric option whose value is not a plain decimal
  option_value_absurd,        // a known numeric option whose value does not fit 32 bits
  too_many_options,           // more than kMaxOptions options
  data_too_short,             // DATA without its block number
  data_too_long,              // DATA payload longer than the largest block size (65464)
  ack_wrong_length,           // ACK that is not exactly 4 bytes
  error_too_short,            // ERROR without its code
  error_unterminated,         // ERROR message without its NUL
  trailing_bytes,             // bytes after the last NUL of an ERROR
};
const boost::system::error_category& wire_category() noexcept;
inline boost::system::error_code make_error_code(WireError e) noexcept {
  return {static_cast<int>(e), wire_category()};
}

enum class Opcode : std::uint16_t { rrq = 1, wrq = 2, data = 3, ack = 4, error = 5, oack = 6 };

/// TFTP error codes (RFC 1350 section 5, RFC 2347 for code 8).
enum class ErrorCode : std::uint16_t {
  not_defined = 0,
  file_not_found = 1,
  access_violation = 2,
  disk_full = 3,
  illegal_operation = 4,
  unknown_tid = 5,
  file_exists = 6,
  no_such_user = 7,
  option_refused = 8,
};

enum class Mode { octet, netascii, mail };

inline constexpr std::size_t kMaxFilename = 1024;
inline constexpr std::size_t kMaxOptions = 16;
/// RFC 2348: the largest block size a client may ask for.
inline constexpr std::size_t kMaxBlockSize = 65464;

/// One option of a request or OACK. Names are stored lower-case (RFC 2347: case-insensitive).
struct Option {
  std::string name;
  std::string value;
  friend bool operator==(const Option&, const Option&) = default;
};

/// RRQ or WRQ.
struct Request {
  Opcode opcode = Opcode::rrq;
  std::string filename;
  Mode mode = Mode::octet;
  std::vector<Option> options;
  /// The value of `name` (lower case) if the request carries it.
  [[nodiscard]] std::optional<std::string_view> option(std::string_view name) const;
  friend bool operator==(const Request&, const Request&) = default;
};

struct Data {
  std::uint16_t block = 0;
  std::vector<std::uint8_t> payload;
  friend bool operator==(const Data&, const Data&) = default;
};

struct Ack {
  std::uint16_t block = 0;
  friend bool operator==(const Ack&, const Ack&) = default;
};

struct ErrorPacket {
  std::uint16_t code = 0;  // raw: peers send values outside ErrorCode too
  std::string message;
  friend bool operator==(const ErrorPacket&, const ErrorPacket&) = default;
};

struct OAck {
  std::vector<Option> options;
  friend bool operator==(const OAck&, const OAck&) = default;
};

using Packet = std::variant<Request, Data, Ack, ErrorPacket, OAck>;

/// Decodes one datagram. Never throws; every malformed input is a WireError whose detail names
/// the offending part. Numeric options known to this server (blksize, timeout, tsize,
/// windowsize) must be plain decimals that fit 32 bits; unknown options pass through.
Result<Packet> parse(std::span<const std::uint8_t> bytes);

/// Encodes a packet. Names and values are written as given.
std::vector<std::uint8_t> serialize(const Packet& packet);

/// Writes the 4-byte DATA header (opcode, block) to `out`, for senders that place the payload
/// themselves. `out` must hold at least 4 bytes.
void write_data_header(std::span<std::uint8_t, 4> out, std::uint16_t block) noexcept;

/// "octet", "netascii", "mail".
std::string_view mode_name(Mode mode) noexcept;

}  // namespace lab::pxe::tftp::wire

template <>
struct boost::system::is_error_code_enum<lab::pxe::tftp::wire::WireError> : std::true_type {};
