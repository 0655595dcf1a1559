#include "pxe/tftp/wire/packet.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace lab::pxe::tftp::wire {
namespace {

const char* message_of(WireError e) noexcept {
  switch (e) {
    case WireError::too_short:
      return "packet shorter than an opcode";
    case WireError::unknown_opcode:
      return "unknown opcode";
    case WireError::filename_unterminated:
      return "filename not terminated by NUL";
    case WireError::filename_empty:
      return "empty filename";
    case WireError::filename_too_long:
      return "filename too long";
    case WireError::mode_unterminated:
      return "mode not terminated by NUL";
    case WireError::mode_unknown:
      return "unknown transfer mode";
    case WireError::option_name_unterminated:
      return "option name not terminated by NUL";
    case WireError::option_value_missing:
      return "option without a value";
    case WireError::option_value_unterminated:
      return "option value not terminated by NUL";
    case WireError::option_name_empty:
      return "empty option name";
    case WireError::option_duplicate:
      return "option given twice";
    case WireError::option_value_invalid:
      return "option value is not a decimal number";
    case WireError::option_value_absurd:
      return "option value out of range";
    case WireError::too_many_options:
      return "too many options";
    case WireError::data_too_short:
      return "DATA without block number";
    case WireError::data_too_long:
      return "DATA payload too long";
    case WireError::ack_wrong_length:
      return "ACK of wrong length";
    case WireError::error_too_short:
      return "ERROR without code";
    case WireError::error_unterminated:
      return "ERROR message not terminated by NUL";
    case WireError::trailing_bytes:
      return "bytes after the end of the packet";
  }
  return "unknown wire error";
}

std::uint16_t read_u16(std::span<const std::uint8_t> b, std::size_t at) noexcept {
  return static_cast<std::uint16_t>((b[at] << 8) | b[at + 1]);
}

void put_u16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v & 0xff));
}

void put_string(std::vector<std::uint8_t>& out, std::string_view s) {
  out.insert(out.end(), s.begin(), s.end());
  out.push_back(0);
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Printable form of untrusted text for error details: at most 64 characters, controls as '?'.
std::string printable(std::string_view s) {
  std::string out;
  for (const char c : s.substr(0, 64)) {
    out.push_back(std::isprint(static_cast<unsigned char>(c)) != 0 ? c : '?');
  }
  if (s.size() > 64)
    out += "...";
  return out;
}

// Reads NUL-terminated strings from a byte range.
class Cursor {
 public:
  explicit Cursor(std::span<const std::uint8_t> b) : b_(b) {}
  [[nodiscard]] bool at_end() const noexcept { return pos_ >= b_.size(); }
  /// The next string without its NUL, or nullopt when no NUL follows.
  std::optional<std::string_view> next() {
    const auto* begin = b_.data() + pos_;
    const auto* end = b_.data() + b_.size();
    const auto* nul = std::find(begin, end, std::uint8_t{0});
    if (nul == end)
      return std::nullopt;
    const std::string_view s(reinterpret_cast<const char*>(begin),
                             static_cast<std::size_t>(nul - begin));
    pos_ += s.size() + 1;
    return s;
  }

 private:
  std::span<const std::uint8_t> b_;
  std::size_t pos_ = 0;
};

bool is_numeric_option(std::string_view name) {
  return name == "blksize" || name == "timeout" || name == "tsize" || name == "windowsize";
}

Result<void> check_numeric(const Option& o) {
  if (o.value.empty() || !std::all_of(o.value.begin(), o.value.end(),
                                      [](unsigned char c) { return std::isdigit(c) != 0; })) {
    return Error(WireError::option_value_invalid,
                 "option " + o.name + " = '" + printable(o.value) + "'");
  }
  // Leading zeros are harmless; what counts is the magnitude.
  const auto first = o.value.find_first_not_of('0');
  const std::string_view digits =
      first == std::string::npos ? std::string_view("0") : std::string_view(o.value).substr(first);
  if (digits.size() > 10 || (digits.size() == 10 && digits > "4294967295")) {
    return Error(WireError::option_value_absurd,
                 "option " + o.name + " = '" + printable(o.value) + "' does not fit 32 bits");
  }
  return {};
}

// Options of a request or OACK: name/value pairs up to the end of the packet.
Result<std::vector<Option>> parse_options(Cursor& c, bool allow_empty_name) {
  std::vector<Option> out;
  while (!c.at_end()) {
    auto name = c.next();
    if (!name)
      return Error(WireError::option_name_unterminated,
                   "option #" + std::to_string(out.size() + 1));
    if (c.at_end()) {
      // Some clients pad requests with a single trailing NUL: accept an empty last name.
      if (name->empty() && allow_empty_name)
        break;
      return Error(WireError::option_value_missing, "option '" + printable(*name) + "'");
    }
    auto value = c.next();
    if (!value) {
      return Error(WireError::option_value_unterminated, "option '" + printable(*name) + "'");
    }
    if (name->empty())
      return Error(WireError::option_name_empty, "option #" + std::to_string(out.size() + 1));
    if (out.size() == kMaxOptions)
      return Error(WireError::too_many_options, "more than " + std::to_string(kMaxOptions));
    Option o{lower(*name), std::string(*value)};
    if (std::any_of(out.begin(), out.end(), [&](const Option& x) { return x.name == o.name; }))
      return Error(WireError::option_duplicate, "option " + o.name);
    if (is_numeric_option(o.name)) {
      LAB_TRY(check_numeric(o));
    }
    out.push_back(std::move(o));
  }
  return out;
}

Result<Packet> parse_request(Opcode op, std::span<const std::uint8_t> body) {
  Cursor c(body);
  auto filename = c.next();
  if (!filename)
    return Error(WireError::filename_unterminated);
  if (filename->empty())
    return Error(WireError::filename_empty);
  if (filename->size() > kMaxFilename)
    return Error(WireError::filename_too_long, std::to_string(filename->size()) + " bytes");
  auto mode_text = c.next();
  if (!mode_text)
    return Error(WireError::mode_unterminated);
  const std::string mode = lower(*mode_text);
  Request r;
  r.opcode = op;
  r.filename = std::string(*filename);
  if (mode == "octet") {
    r.mode = Mode::octet;
  } else if (mode == "netascii") {
    r.mode = Mode::netascii;
  } else if (mode == "mail") {
    r.mode = Mode::mail;
  } else {
    return Error(WireError::mode_unknown, "mode '" + printable(*mode_text) + "'");
  }
  LAB_TRY_ASSIGN(r.options, parse_options(c, true));
  return Packet(std::move(r));
}

}  // namespace

const boost::system::error_category& wire_category() noexcept {
  static const ErrorCategory<WireError> kCategory("lab.tftp.wire", &message_of);
  return kCategory;
}

std::optional<std::string_view> Request::option(std::string_view name) const {
  for (const auto& o : options) {
    if (o.name == name)
      return std::string_view(o.value);
  }
  return std::nullopt;
}

std::string_view mode_name(Mode mode) noexcept {
  switch (mode) {
    case Mode::octet:
      return "octet";
    case Mode::netascii:
      return "netascii";
    case Mode::mail:
      return "mail";
  }
  return "octet";
}

Result<Packet> parse(std::span<const std::uint8_t> bytes) {
  if (bytes.size() < 2)
    return Error(WireError::too_short, std::to_string(bytes.size()) + " bytes");
  const std::uint16_t op = read_u16(bytes, 0);
  const auto body = bytes.subspan(2);
  switch (op) {
    case static_cast<std::uint16_t>(Opcode::rrq):
    case static_cast<std::uint16_t>(Opcode::wrq):
      return parse_request(static_cast<Opcode>(op), body);
    case static_cast<std::uint16_t>(Opcode::data): {
      if (body.size() < 2)
        return Error(WireError::data_too_short);
      if (body.size() - 2 > kMaxBlockSize)
        return Error(WireError::data_too_long, std::to_string(body.size() - 2) + " bytes");
      return Packet(Data{read_u16(body, 0), {body.begin() + 2, body.end()}});
    }
    case static_cast<std::uint16_t>(Opcode::ack):
      if (body.size() != 2)
        return Error(WireError::ack_wrong_length, std::to_string(bytes.size()) + " bytes");
      return Packet(Ack{read_u16(body, 0)});
    case static_cast<std::uint16_t>(Opcode::error): {
      if (body.size() < 2)
        return Error(WireError::error_too_short);
      Cursor c(body.subspan(2));
      auto msg = c.next();
      if (!msg)
        return Error(WireError::error_unterminated);
      if (!c.at_end())
        return Error(WireError::trailing_bytes, "after the ERROR message");
      return Packet(ErrorPacket{read_u16(body, 0), std::string(*msg)});
    }
    case static_cast<std::uint16_t>(Opcode::oack): {
      Cursor c(body);
      LAB_TRY_ASSIGN(auto options, parse_options(c, false));
      return Packet(OAck{std::move(options)});
    }
    default:
      return Error(WireError::unknown_opcode, "opcode " + std::to_string(op));
  }
}

std::vector<std::uint8_t> serialize(const Packet& packet) {
  std::vector<std::uint8_t> out;
  std::visit(
      [&](const auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, Request>) {
          put_u16(out, static_cast<std::uint16_t>(p.opcode));
          put_string(out, p.filename);
          put_string(out, mode_name(p.mode));
          for (const auto& o : p.options) {
            put_string(out, o.name);
            put_string(out, o.value);
          }
        } else if constexpr (std::is_same_v<T, Data>) {
          out.reserve(4 + p.payload.size());
          put_u16(out, static_cast<std::uint16_t>(Opcode::data));
          put_u16(out, p.block);
          out.insert(out.end(), p.payload.begin(), p.payload.end());
        } else if constexpr (std::is_same_v<T, Ack>) {
          put_u16(out, static_cast<std::uint16_t>(Opcode::ack));
          put_u16(out, p.block);
        } else if constexpr (std::is_same_v<T, ErrorPacket>) {
          put_u16(out, static_cast<std::uint16_t>(Opcode::error));
          put_u16(out, p.code);
          put_string(out, p.message);
        } else {
          put_u16(out, static_cast<std::uint16_t>(Opcode::oack));
          for (const auto& o : p.options) {
            put_string(out, o.name);
            put_string(out, o.value);
          }
        }
      },
      packet);
  return out;
}

void write_data_header(std::span<std::uint8_t, 4> out, std::uint16_t block) noexcept {
  out[0] = 0;
  out[1] = static_cast<std::uint8_t>(Opcode::data);
  out[2] = static_cast<std::uint8_t>(block >> 8);
  out[3] = static_cast<std::uint8_t>(block & 0xff);
}

}  // namespace lab::pxe::tftp::wire
