#pragma once

#include "shared/errors/error.hpp"

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lab::pxe::dhcp::wire {

/// Where parsing or encoding a DHCPv4 packet failed; one value per failure site.
enum class WireError {
  too_short = 1,          // fewer than 240 bytes (fixed header + magic cookie)
  bad_magic,              // the magic cookie is not 99.130.83.99
  bad_op,                 // op is neither BOOTREQUEST (1) nor BOOTREPLY (2)
  bad_hlen,               // hardware address length above 16
  option_length_missing,  // an option code in the last byte of its area, no length byte
  option_overrun,         // an option's length runs past the end of its area
  too_many_options,       // more option instances than kMaxOptionInstances
  overload_invalid,       // option 52 is not one byte of value 1, 2 or 3
  bad_message_type,       // option 53 is not one byte of value 1..8
  bad_address,            // an address option whose length is not a multiple of 4
  bad_u16,                // option 57 is not two bytes
  bad_u32,                // a time option (51, 58, 59) is not four bytes
  bad_arch,               // option 93 is empty or of odd length
  bad_ndi,                // option 94 is not three bytes
  bad_uuid,               // option 97 is not 17 bytes of type 0
  bad_suboption,          // an encapsulated option (43, 82, 175) runs past its parent
  too_large,              // the reply does not fit in the client's maximum message size
};
const boost::system::error_category& wire_category() noexcept;
inline boost::system::error_code make_error_code(WireError e) noexcept {
  return {static_cast<int>(e), wire_category()};
}

/// An IPv4 address in host byte order.
struct Ipv4 {
  std::uint32_t value = 0;
  [[nodiscard]] bool is_zero() const noexcept { return value == 0; }
  [[nodiscard]] std::string to_string() const;
  /// Dotted quad; nullopt for anything else.
  static std::optional<Ipv4> parse(std::string_view text) noexcept;
  static Ipv4 from_bytes(const std::uint8_t* p) noexcept;
  void to_bytes(std::uint8_t* p) const noexcept;
  friend bool operator==(const Ipv4&, const Ipv4&) = default;
  friend std::strong_ordering operator<=>(const Ipv4& a, const Ipv4& b) noexcept {
    return a.value <=> b.value;
  }
};
inline constexpr Ipv4 kBroadcast{0xffffffffU};

enum class MessageType : std::uint8_t {
  discover = 1,
  offer,
  request,
  decline,
  ack,
  nak,
  release,
  inform,
};
std::string_view message_type_name(MessageType t) noexcept;

/// Option codes this server reads or writes (RFC 2132, 3046, 4578, 3004, iPXE).
namespace opt {
inline constexpr std::uint8_t kPad = 0;
inline constexpr std::uint8_t kSubnetMask = 1;
inline constexpr std::uint8_t kRouter = 3;
inline constexpr std::uint8_t kDns = 6;
inline constexpr std::uint8_t kHostName = 12;
inline constexpr std::uint8_t kVendorSpecific = 43;
inline constexpr std::uint8_t kRequestedIp = 50;
inline constexpr std::uint8_t kLeaseTime = 51;
inline constexpr std::uint8_t kOverload = 52;
inline constexpr std::uint8_t kMessageType = 53;
inline constexpr std::uint8_t kServerId = 54;
inline constexpr std::uint8_t kParameterList = 55;
inline constexpr std::uint8_t kMessage = 56;
inline constexpr std::uint8_t kMaxMessageSize = 57;
inline constexpr std::uint8_t kRenewalTime = 58;
inline constexpr std::uint8_t kRebindingTime = 59;
inline constexpr std::uint8_t kVendorClass = 60;
inline constexpr std::uint8_t kClientId = 61;
inline constexpr std::uint8_t kTftpServer = 66;
inline constexpr std::uint8_t kBootFile = 67;
inline constexpr std::uint8_t kUserClass = 77;
inline constexpr std::uint8_t kRelayAgentInfo = 82;
inline constexpr std::uint8_t kClientArch = 93;
inline constexpr std::uint8_t kClientNdi = 94;
inline constexpr std::uint8_t kClientUuid = 97;
inline constexpr std::uint8_t kIpxe = 175;
inline constexpr std::uint8_t kEnd = 255;
}  // namespace opt

/// One option; `data` is the concatenation of every instance of the code (RFC 3396).
struct Option {
  std::uint8_t code = 0;
  std::vector<std::uint8_t> data;
  friend bool operator==(const Option&, const Option&) = default;
};

/// The limits a remote party cannot push us past.
inline constexpr std::size_t kFixedSize = 236;   // op .. file, without the magic cookie
inline constexpr std::size_t kMinSize = 240;     // fixed part + magic cookie
inline constexpr std::size_t kMinReply = 300;    // BOOTP clients drop shorter packets
inline constexpr std::size_t kMaxPacket = 1500;  // we never read or write more than one frame
inline constexpr std::size_t kMaxOptionInstances = 512;
inline constexpr std::size_t kDefaultMaxMessage = 576;  // RFC 2131 §2: every client accepts

/// A DHCPv4 message (RFC 2131 §2). Field values are as on the wire, addresses in host order.
struct Message {
  std::uint8_t op = 1;
  std::uint8_t htype = 1;
  std::uint8_t hlen = 6;
  std::uint8_t hops = 0;
  std::uint32_t xid = 0;
  std::uint16_t secs = 0;
  std::uint16_t flags = 0;
  Ipv4 ciaddr, yiaddr, siaddr, giaddr;
  std::array<std::uint8_t, 16> chaddr{};
  std::string sname;  // NUL-terminated text; empty when option overload used the field
  std::string file;
  std::vector<Option> options;  // in first-seen order, without pad, end and overload (52)

  static constexpr std::uint16_t kBroadcastFlag = 0x8000;
  [[nodiscard]] bool broadcast() const noexcept { return (flags & kBroadcastFlag) != 0; }

  [[nodiscard]] const Option* find(std::uint8_t code) const noexcept;
  /// Replaces the option of that code, or appends it.
  void set(std::uint8_t code, std::vector<std::uint8_t> data);
  void set(std::uint8_t code, std::string_view text);
  void set_ip(std::uint8_t code, Ipv4 ip);
  void set_u32(std::uint8_t code, std::uint32_t v);
  void erase(std::uint8_t code) noexcept;

  /// "52:54:00:12:34:56": the hardware address, lower case (hlen bytes, at most 16).
  [[nodiscard]] std::string mac() const;

  friend bool operator==(const Message&, const Message&) = default;
};

/// Parses one UDP payload. Never reads outside `bytes`; option overload (52) is honoured, so
/// options found in `file` and `sname` are merged in and those fields come back empty.
Result<Message> parse(std::span<const std::uint8_t> bytes);

/// Encodes a message. Options longer than 255 bytes are split (RFC 3396); when the options do
/// not fit in `max_size` (the client's option 57, at least 576), `file` and `sname` are used
/// through option overload if they are empty. Fails with too_large otherwise.
Result<std::vector<std::uint8_t>> serialize(const Message& m,
                                            std::size_t max_size = kDefaultMaxMessage);

// Typed views of options. Each returns nullopt when the option is absent and an error when it
// is present but malformed.
Result<std::optional<MessageType>> message_type(const Message& m);
Result<std::optional<Ipv4>> ip_option(const Message& m, std::uint8_t code);
Result<std::optional<std::uint32_t>> u32_option(const Message& m, std::uint8_t code);
/// Option 57 clamped to [576, kMaxPacket]; 576 when absent or malformed.
std::size_t max_message_size(const Message& m) noexcept;
/// Option 93: client system architectures, in the client's order.
Result<std::vector<std::uint16_t>> client_arch(const Message& m);
/// Option 60 as text ("PXEClient:Arch:00007:UNDI:003016"); empty when absent.
std::string vendor_class(const Message& m);
/// Option 77: the user classes. iPXE sends the raw bytes "iPXE"; RFC 3004 clients send a list
/// of length-prefixed classes. Both are accepted: a value that is not a well-formed RFC 3004
/// list is one class.
std::vector<std::string> user_classes(const Message& m);
/// Option 61 when present, otherwise htype followed by the hardware address: the key a
/// client's lease is stored under.
std::string client_key(const Message& m);
/// The longest client id (option 61) the server accepts: RFC 4361's, type 255 with a 4-byte
/// IAID and a DUID of at most 2 + 128 bytes (RFC 8415 §11.1). A longer one comes from no
/// standard client; the engine ignores its packets, so a client key is never longer than this.
inline constexpr std::size_t kMaxClientId = 135;

/// Encapsulated options (43 vendor-specific, 82 relay agent sub-options, 175 iPXE): code,
/// length, value triples, ending at the end of the parent or at code 255. Pad (0) is skipped.
Result<std::vector<Option>> parse_suboptions(std::span<const std::uint8_t> bytes);
std::vector<std::uint8_t> serialize_suboptions(const std::vector<Option>& subs);

}  // namespace lab::pxe::dhcp::wire

template <>
struct boost::system::is_error_code_enum<lab::pxe::dhcp::wire::WireError> : std::true_type {};
