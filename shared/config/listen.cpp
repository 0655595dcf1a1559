#include "shared/config/listen.hpp"

#include "shared/config/config.hpp"

#include <charconv>

namespace lab::shared::config {

Result<ListenAddress> parse_listen(std::string_view key, std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return Error(ConfigError::invalid_value, std::string(key) + " = \"" + std::string(text) +
                                                 "\": " + std::string(why) +
                                                 " (expected ADDRESS:PORT or [IPv6]:PORT)");
  };
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    return bad("no address and port");
  ListenAddress out;
  out.host = std::string(text.substr(0, colon));
  if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']')
    out.host = out.host.substr(1, out.host.size() - 2);
  const auto port = text.substr(colon + 1);
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535)
    return bad("bad port");
  out.port = static_cast<std::uint16_t>(value);
  return out;
}

}  // namespace lab::shared::config
