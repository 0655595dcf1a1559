#pragma once
// Listen addresses as written in configuration keys ("10.0.0.1:8443", "[::]:8444").

#include "shared/errors/error.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace lab::shared::config {

/// An address and port a server binds, as written in `*.listen` keys.
struct ListenAddress {
  std::string host;  // "0.0.0.0", "::" (brackets removed), "10.0.0.1"
  std::uint16_t port = 0;
};

/// Parses "ADDRESS:PORT" or "[IPv6]:PORT". The error (config invalid_value) names `key` and the
/// value, so an operator sees which line of the file to fix.
Result<ListenAddress> parse_listen(std::string_view key, std::string_view text);

}  // namespace lab::shared::config
