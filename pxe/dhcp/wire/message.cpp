#include "pxe/dhcp/wire/message.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace lab::pxe::dhcp::wire {
namespace {

constexpr std::array<std::uint8_t, 4> kMagic{99, 130, 83, 99};
constexpr std::size_t kSnameOffset = 44;
constexpr std::size_t kSnameSize = 64;
constexpr std::size_t kFileOffset = 108;
constexpr std::size_t kFileSize = 128;

std::uint16_t get16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
std::uint32_t get32(const std::uint8_t* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}
void put16(std::uint8_t* p, std::uint16_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
void put32(std::uint8_t* p, std::uint32_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}

std::string c_string(std::span<const std::uint8_t> field) {
  const auto end = std::find(field.begin(), field.end(), std::uint8_t{0});
  return std::string(field.begin(), end);
}

// Collects option instances of one area into `out`, concatenating repeated codes (RFC 3396).
// `overload` receives option 52's value when the area holds it.
Result<void> parse_area(std::span<const std::uint8_t> area, const char* where,
                        std::vector<Option>& out, std::size_t& instances,
                        std::optional<std::uint8_t>* overload) {
  std::size_t i = 0;
  while (i < area.size()) {
    const std::uint8_t code = area[i];
    if (code == opt::kPad) {
      ++i;
      continue;
    }
    if (code == opt::kEnd)
      return {};
    if (i + 1 >= area.size())
      return Error(WireError::option_length_missing, std::string("option ") + std::to_string(code) +
                                                         " at the end of " + where +
                                                         " has no length byte");
    const std::size_t len = area[i + 1];
    if (i + 2 + len > area.size())
      return Error(WireError::option_overrun, "option " + std::to_string(code) + " of length " +
                                                  std::to_string(len) + " runs past the end of " +
                                                  where);
    if (++instances > kMaxOptionInstances)
      return Error(WireError::too_many_options,
                   "more than " + std::to_string(kMaxOptionInstances) + " options");
    const auto value = area.subspan(i + 2, len);
    if (code == opt::kOverload) {
      if (overload == nullptr || len != 1 || value[0] < 1 || value[0] > 3)
        return Error(WireError::overload_invalid,
                     std::string("option 52 (overload) is invalid in ") + where);
      *overload = value[0];
    } else {
      auto it =
          std::find_if(out.begin(), out.end(), [&](const Option& o) { return o.code == code; });
      if (it == out.end())
        out.push_back(Option{code, {value.begin(), value.end()}});
      else
        it->data.insert(it->data.end(), value.begin(), value.end());
    }
    i += 2 + len;
  }
  return {};
}

// Appends option `o` as one or more TLV chunks of at most 255 bytes.
void encode_option(const Option& o, std::vector<std::vector<std::uint8_t>>& chunks) {
  std::size_t pos = 0;
  do {
    const std::size_t n = std::min<std::size_t>(255, o.data.size() - pos);
    std::vector<std::uint8_t> c;
    c.reserve(n + 2);
    c.push_back(o.code);
    c.push_back(static_cast<std::uint8_t>(n));
    c.insert(c.end(), o.data.begin() + static_cast<std::ptrdiff_t>(pos),
             o.data.begin() + static_cast<std::ptrdiff_t>(pos + n));
    chunks.push_back(std::move(c));
    pos += n;
  } while (pos < o.data.size());
}

}  // namespace

const boost::system::error_category& wire_category() noexcept {
  static const ErrorCategory<WireError> kCategory(
      "lab.dhcp.wire", [](WireError e) noexcept -> const char* {
        switch (e) {
          case WireError::too_short:
            return "packet shorter than a DHCP header";
          case WireError::bad_magic:
            return "bad magic cookie";
          case WireError::bad_op:
            return "bad op";
          case WireError::bad_hlen:
            return "hardware address length above 16";
          case WireError::option_length_missing:
            return "option without length byte";
          case WireError::option_overrun:
            return "option runs past its area";
          case WireError::too_many_options:
            return "too many options";
          case WireError::overload_invalid:
            return "invalid option overload";
          case WireError::bad_message_type:
            return "invalid message type option";
          case WireError::bad_address:
            return "invalid address option";
          case WireError::bad_u16:
            return "invalid 16-bit option";
          case WireError::bad_u32:
            return "invalid 32-bit option";
          case WireError::bad_arch:
            return "invalid client architecture option";
          case WireError::bad_ndi:
            return "invalid client network interface option";
          case WireError::bad_uuid:
            return "invalid client machine identifier option";
          case WireError::bad_suboption:
            return "encapsulated option runs past its parent";
          case WireError::too_large:
            return "message larger than the client accepts";
        }
        return "dhcp wire error";
      });
  return kCategory;
}

std::string Ipv4::to_string() const {
  return std::to_string(value >> 24) + '.' + std::to_string((value >> 16) & 0xff) + '.' +
         std::to_string((value >> 8) & 0xff) + '.' + std::to_string(value & 0xff);
}

std::optional<Ipv4> Ipv4::parse(std::string_view text) noexcept {
  std::uint32_t out = 0;
  const char* p = text.data();
  const char* end = text.data() + text.size();
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (p == end || *p != '.')
        return std::nullopt;
      ++p;
    }
    unsigned v = 0;
    const char* start = p;
    auto [next, ec] = std::from_chars(p, end, v);
    if (ec != std::errc() || next == start || next - start > 3 || v > 255)
      return std::nullopt;
    out = (out << 8) | v;
    p = next;
  }
  if (p != end)
    return std::nullopt;
  return Ipv4{out};
}

Ipv4 Ipv4::from_bytes(const std::uint8_t* p) noexcept {
  return Ipv4{get32(p)};
}
void Ipv4::to_bytes(std::uint8_t* p) const noexcept {
  put32(p, value);
}

std::string_view message_type_name(MessageType t) noexcept {
  switch (t) {
    case MessageType::discover:
      return "DISCOVER";
    case MessageType::offer:
      return "OFFER";
    case MessageType::request:
      return "REQUEST";
    case MessageType::decline:
      return "DECLINE";
    case MessageType::ack:
      return "ACK";
    case MessageType::nak:
      return "NAK";
    case MessageType::release:
      return "RELEASE";
    case MessageType::inform:
      return "INFORM";
  }
  return "UNKNOWN";
}

const Option* Message::find(std::uint8_t code) const noexcept {
  for (const auto& o : options) {
    if (o.code == code)
      return &o;
  }
  return nullptr;
}

void Message::set(std::uint8_t code, std::vector<std::uint8_t> data) {
  for (auto& o : options) {
    if (o.code == code) {
      o.data = std::move(data);
      return;
    }
  }
  options.push_back(Option{code, std::move(data)});
}

void Message::set(std::uint8_t code, std::string_view text) {
  set(code, std::vector<std::uint8_t>(text.begin(), text.end()));
}

void Message::set_ip(std::uint8_t code, Ipv4 ip) {
  std::vector<std::uint8_t> b(4);
  ip.to_bytes(b.data());
  set(code, std::move(b));
}

void Message::set_u32(std::uint8_t code, std::uint32_t v) {
  std::vector<std::uint8_t> b(4);
  put32(b.data(), v);
  set(code, std::move(b));
}

void Message::erase(std::uint8_t code) noexcept {
  std::erase_if(options, [code](const Option& o) { return o.code == code; });
}

std::string Message::mac() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  const std::size_t n = std::min<std::size_t>(hlen, chaddr.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (i > 0)
      out.push_back(':');
    out.push_back(kHex[chaddr[i] >> 4]);
    out.push_back(kHex[chaddr[i] & 0xf]);
  }
  return out;
}

Result<Message> parse(std::span<const std::uint8_t> b) {
  if (b.size() < kMinSize)
    return Error(WireError::too_short, std::to_string(b.size()) + " bytes");
  if (b.size() > kMaxPacket)
    b = b.first(kMaxPacket);
  Message m;
  m.op = b[0];
  if (m.op != 1 && m.op != 2)
    return Error(WireError::bad_op, "op " + std::to_string(m.op));
  m.htype = b[1];
  m.hlen = b[2];
  if (m.hlen > 16)
    return Error(WireError::bad_hlen, "hlen " + std::to_string(m.hlen));
  m.hops = b[3];
  m.xid = get32(&b[4]);
  m.secs = get16(&b[8]);
  m.flags = get16(&b[10]);
  m.ciaddr = Ipv4::from_bytes(&b[12]);
  m.yiaddr = Ipv4::from_bytes(&b[16]);
  m.siaddr = Ipv4::from_bytes(&b[20]);
  m.giaddr = Ipv4::from_bytes(&b[24]);
  std::memcpy(m.chaddr.data(), &b[28], 16);
  if (!std::equal(kMagic.begin(), kMagic.end(), b.begin() + kFixedSize))
    return Error(WireError::bad_magic, "not a DHCP packet (BOOTP without options?)");

  std::size_t instances = 0;
  std::optional<std::uint8_t> overload;
  LAB_TRY(parse_area(b.subspan(kMinSize), "the options field", m.options, instances, &overload));
  const auto file = b.subspan(kFileOffset, kFileSize);
  const auto sname = b.subspan(kSnameOffset, kSnameSize);
  // RFC 2131 §4.1: with overload, options continue in 'file' first, then in 'sname'.
  if (overload && (*overload & 1) != 0)
    LAB_TRY(parse_area(file, "the file field", m.options, instances, nullptr));
  else
    m.file = c_string(file);
  if (overload && (*overload & 2) != 0)
    LAB_TRY(parse_area(sname, "the sname field", m.options, instances, nullptr));
  else
    m.sname = c_string(sname);
  return m;
}

Result<std::vector<std::uint8_t>> serialize(const Message& m, std::size_t max_size) {
  max_size = std::clamp(max_size, kDefaultMaxMessage, kMaxPacket);
  std::vector<std::vector<std::uint8_t>> chunks;
  chunks.reserve(m.options.size() + 4);
  for (const auto& o : m.options) {
    if (o.code != opt::kPad && o.code != opt::kEnd && o.code != opt::kOverload)
      encode_option(o, chunks);
  }

  // Place chunks in order: the options field first, then (overloading) file, then sname.
  const std::size_t main_cap = max_size - kMinSize - 1;  // one byte for END
  std::size_t total = 0;
  for (const auto& c : chunks)
    total += c.size();
  std::vector<std::uint8_t> main, in_file, in_sname;
  std::uint8_t overload = 0;
  if (total <= main_cap) {
    for (const auto& c : chunks)
      main.insert(main.end(), c.begin(), c.end());
  } else {
    const bool file_free = m.file.empty();
    const bool sname_free = m.sname.empty();
    const std::size_t cap[3] = {main_cap - 3, file_free ? kFileSize - 1 : 0,
                                sname_free ? kSnameSize - 1 : 0};
    std::vector<std::uint8_t>* area[3] = {&main, &in_file, &in_sname};
    std::size_t a = 0;
    for (const auto& c : chunks) {
      while (a < 3 && area[a]->size() + c.size() > cap[a])
        ++a;
      if (a == 3)
        return Error(WireError::too_large,
                     "options need more than " + std::to_string(max_size) + " bytes");
      area[a]->insert(area[a]->end(), c.begin(), c.end());
    }
    overload = static_cast<std::uint8_t>((in_file.empty() ? 0 : 1) | (in_sname.empty() ? 0 : 2));
  }
  if (m.file.size() > kFileSize || m.sname.size() > kSnameSize)
    return Error(WireError::too_large, "file or sname longer than its field");

  std::vector<std::uint8_t> out(kMinSize, 0);
  out.reserve(std::max(kMinReply, kMinSize + main.size() + 4));
  out[0] = m.op;
  out[1] = m.htype;
  out[2] = m.hlen;
  out[3] = m.hops;
  put32(&out[4], m.xid);
  put16(&out[8], m.secs);
  put16(&out[10], m.flags);
  m.ciaddr.to_bytes(&out[12]);
  m.yiaddr.to_bytes(&out[16]);
  m.siaddr.to_bytes(&out[20]);
  m.giaddr.to_bytes(&out[24]);
  std::memcpy(&out[28], m.chaddr.data(), 16);
  auto fill = [&](std::size_t offset, std::size_t size, const std::string& text,
                  const std::vector<std::uint8_t>& opts) {
    if (!opts.empty()) {
      std::memcpy(&out[offset], opts.data(), opts.size());
      if (opts.size() < size)
        out[offset + opts.size()] = opt::kEnd;
    } else {
      std::memcpy(&out[offset], text.data(), std::min(text.size(), size));
    }
  };
  fill(kSnameOffset, kSnameSize, m.sname, in_sname);
  fill(kFileOffset, kFileSize, m.file, in_file);
  std::copy(kMagic.begin(), kMagic.end(), out.begin() + kFixedSize);
  if (overload != 0) {
    out.push_back(opt::kOverload);
    out.push_back(1);
    out.push_back(overload);
  }
  out.insert(out.end(), main.begin(), main.end());
  out.push_back(opt::kEnd);
  if (out.size() < kMinReply)
    out.resize(kMinReply, 0);
  return out;
}

Result<std::optional<MessageType>> message_type(const Message& m) {
  const Option* o = m.find(opt::kMessageType);
  if (o == nullptr)
    return std::optional<MessageType>();
  if (o->data.size() != 1 || o->data[0] < 1 || o->data[0] > 8)
    return Error(WireError::bad_message_type, "option 53");
  return std::optional<MessageType>(static_cast<MessageType>(o->data[0]));
}

Result<std::optional<Ipv4>> ip_option(const Message& m, std::uint8_t code) {
  const Option* o = m.find(code);
  if (o == nullptr)
    return std::optional<Ipv4>();
  if (o->data.size() != 4)
    return Error(WireError::bad_address, "option " + std::to_string(code) + " has length " +
                                             std::to_string(o->data.size()));
  return std::optional<Ipv4>(Ipv4::from_bytes(o->data.data()));
}

Result<std::optional<std::uint32_t>> u32_option(const Message& m, std::uint8_t code) {
  const Option* o = m.find(code);
  if (o == nullptr)
    return std::optional<std::uint32_t>();
  if (o->data.size() != 4)
    return Error(WireError::bad_u32, "option " + std::to_string(code));
  return std::optional<std::uint32_t>(get32(o->data.data()));
}

std::size_t max_message_size(const Message& m) noexcept {
  const Option* o = m.find(opt::kMaxMessageSize);
  if (o == nullptr || o->data.size() != 2)
    return kDefaultMaxMessage;
  return std::clamp<std::size_t>(get16(o->data.data()), kDefaultMaxMessage, kMaxPacket);
}

Result<std::vector<std::uint16_t>> client_arch(const Message& m) {
  std::vector<std::uint16_t> out;
  const Option* o = m.find(opt::kClientArch);
  if (o == nullptr)
    return out;
  if (o->data.empty() || o->data.size() % 2 != 0)
    return Error(WireError::bad_arch, "option 93 has length " + std::to_string(o->data.size()));
  for (std::size_t i = 0; i + 1 < o->data.size(); i += 2)
    out.push_back(get16(&o->data[i]));
  return out;
}

std::string vendor_class(const Message& m) {
  const Option* o = m.find(opt::kVendorClass);
  if (o == nullptr)
    return {};
  return {o->data.begin(), o->data.end()};
}

std::vector<std::string> user_classes(const Message& m) {
  std::vector<std::string> out;
  const Option* o = m.find(opt::kUserClass);
  if (o == nullptr || o->data.empty())
    return out;
  const auto& d = o->data;
  std::size_t i = 0;
  while (i < d.size()) {
    const std::size_t len = d[i];
    if (len == 0 || i + 1 + len > d.size())
      break;
    out.emplace_back(d.begin() + static_cast<std::ptrdiff_t>(i + 1),
                     d.begin() + static_cast<std::ptrdiff_t>(i + 1 + len));
    i += 1 + len;
  }
  if (i != d.size()) {
    out.clear();
    out.emplace_back(d.begin(), d.end());
  }
  return out;
}

std::string client_key(const Message& m) {
  if (const Option* o = m.find(opt::kClientId); o != nullptr && !o->data.empty())
    return {o->data.begin(), o->data.end()};
  std::string key(1, static_cast<char>(m.htype));
  key.append(m.chaddr.begin(), m.chaddr.begin() + std::min<std::size_t>(m.hlen, 16));
  return key;
}

Result<std::vector<Option>> parse_suboptions(std::span<const std::uint8_t> bytes) {
  std::vector<Option> out;
  std::size_t i = 0;
  while (i < bytes.size()) {
    const std::uint8_t code = bytes[i];
    if (code == opt::kPad) {
      ++i;
      continue;
    }
    if (code == opt::kEnd)
      break;
    if (i + 1 >= bytes.size() || i + 2 + bytes[i + 1] > bytes.size())
      return Error(WireError::bad_suboption,
                   "sub-option " + std::to_string(code) + " runs past its parent");
    if (out.size() >= kMaxOptionInstances)
      return Error(WireError::bad_suboption, "too many sub-options");
    const auto v = bytes.subspan(i + 2, bytes[i + 1]);
    out.push_back(Option{code, {v.begin(), v.end()}});
    i += 2 + bytes[i + 1];
  }
  return out;
}

std::vector<std::uint8_t> serialize_suboptions(const std::vector<Option>& subs) {
  std::vector<std::uint8_t> out;
  for (const auto& s : subs) {
    out.push_back(s.code);
    out.push_back(static_cast<std::uint8_t>(std::min<std::size_t>(s.data.size(), 255)));
    out.insert(
        out.end(), s.data.begin(),
        s.data.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(s.data.size(), 255)));
  }
  return out;
}

}  // namespace lab::pxe::dhcp::wire
