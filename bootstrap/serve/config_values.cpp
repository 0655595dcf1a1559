// Values several `lab serve` components read the same way.
#include "bootstrap/serve/config_values.hpp"

#include "shared/config/config.hpp"

#include <charconv>
#include <system_error>

namespace lab::bootstrap::serve {

Result<ListenAddress> parse_listen(std::string_view key, std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return Error(shared::config::ConfigError::invalid_value,
                 std::string(key) + " = \"" + std::string(text) + "\": " + std::string(why) +
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

Result<std::filesystem::path> served_root(const std::filesystem::path& data_dir,
                                          std::string_view configured,
                                          std::string_view default_name) {
  if (!configured.empty())
    return std::filesystem::path(configured);
  std::filesystem::path root = data_dir / default_name;
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) {
    return Error(boost::system::error_code(ec.value(), boost::system::system_category()),
                 "cannot create " + root.string() + ": " + ec.message());
  }
  return root;
}

}  // namespace lab::bootstrap::serve
