#include "shared/net/mac.hpp"

namespace lab::shared::net {
namespace {

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string> normalize_mac(std::string_view text) {
  constexpr std::size_t kOctets = 6;
  char separator = 0;
  if (text.size() == kOctets * 3 - 1) {
    separator = text[2];
    if (separator != ':' && separator != '-')
      return std::nullopt;
  } else if (text.size() != kOctets * 2) {
    return std::nullopt;
  }
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(kOctets * 3 - 1);
  std::size_t i = 0;
  for (std::size_t octet = 0; octet < kOctets; ++octet) {
    if (octet > 0 && separator != 0) {
      if (text[i] != separator)
        return std::nullopt;
      ++i;
    }
    const int hi = hex_digit(text[i]);
    const int lo = hex_digit(text[i + 1]);
    if (hi < 0 || lo < 0)
      return std::nullopt;
    i += 2;
    if (octet > 0)
      out += ':';
    out += kDigits[hi];
    out += kDigits[lo];
  }
  return out;
}

}  // namespace lab::shared::net
