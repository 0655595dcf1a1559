#pragma once

#include "shared/errors/error.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace lab::bootstrap::serve {

/// An address and port a server binds, as written in `*.listen` keys.
struct ListenAddress {
  std::string host;  // "0.0.0.0", "::" (brackets removed), "10.0.0.1"
  std::uint16_t port = 0;
};

/// Parses "ADDRESS:PORT" or "[IPv6]:PORT". The error (config invalid_value) names `key` and the
/// value, so an operator sees which line of the file to fix.
Result<ListenAddress> parse_listen(std::string_view key, std::string_view text);

/// The directory a server serves from: `configured` when set (a missing one is the server's to
/// report: it is a typo, not a directory to make), else <data_dir>/<default_name>, created.
Result<std::filesystem::path> served_root(const std::filesystem::path& data_dir,
                                          std::string_view configured,
                                          std::string_view default_name);

}  // namespace lab::bootstrap::serve
