// Checks of command-line values the coordinator would refuse anyway: refused here, they exit 2
// with the value named, before anything is sent.
#include "bootstrap/lab/api_client.hpp"
#include "bootstrap/lab/commands.hpp"
#include "shared/config/config.hpp"
#include "shared/labels/selector.hpp"
#include "shared/net/mac.hpp"

#include <CLI/CLI.hpp>

#include <arpa/inet.h>

#include <array>
#include <string>

namespace lab::bootstrap::commands {

namespace {

// "--add 'x'" or, for a positional argument, "'x'".
std::string named(std::string_view option, std::string_view value) {
  std::string out;
  if (!option.empty())
    out = std::string(option) + " ";
  return out + "'" + std::string(value) + "'";
}

}  // namespace

Result<std::string> parse_mac_arg(std::string_view text, std::string_view option) {
  // The same spellings `lab machine timeline` accepts; the coordinator takes only the first.
  auto mac = shared::net::normalize_mac(text);
  if (!mac) {
    return Error(LabError::usage,
                 named(option, text) +
                     " is not a MAC address like 52:54:00:12:34:56 (or 52-54-00-12-34-56, "
                     "525400123456)");
  }
  return std::move(*mac);
}

Result<void> check_ip_arg(std::string_view text, std::string_view option) {
  std::array<unsigned char, 16> buf{};
  const std::string s(text);
  if (inet_pton(AF_INET, s.c_str(), buf.data()) == 1 ||
      inet_pton(AF_INET6, s.c_str(), buf.data()) == 1) {
    return {};
  }
  return Error(LabError::usage,
               named(option, text) + " is not an IP address like 10.0.0.5 or fd00::5");
}

Result<void> check_duration_arg(std::string_view text, std::string_view option) {
  // The parser the coordinator and the configuration use.
  if (auto d = shared::config::parse_duration(text); d && d->count() > 0)
    return {};
  return Error(LabError::usage,
               named(option, text) + " is not a duration like 90s, 15m, 12h or 30d (above 0)");
}

CLI::Validator selector_arg() {
  return {[](std::string& value) {
            std::size_t at = 0;
            auto parsed = shared::labels::Selector::parse(value, at);
            if (parsed)
              return std::string();
            return parsed.error().detail() + "\n  " + value + "\n  " + std::string(at, ' ') + "^";
          },
          ""};
}

CLI::Validator name_arg(shared::names::Kind kind) {
  return {[kind](std::string& value) {
            std::string p = shared::names::problem(kind, value);
            return p.empty() ? p : "'" + value + "' " + p;
          },
          ""};
}

}  // namespace lab::bootstrap::commands
