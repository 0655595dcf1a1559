#pragma once

#include "shared/config/listen.hpp"
#include "shared/errors/error.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace lab::bootstrap::serve {

using shared::config::ListenAddress;
using shared::config::parse_listen;

/// The directory a server serves from: `configured` when set (a missing one is the server's to
/// report: it is a typo, not a directory to make), else <data_dir>/<default_name>, created.
Result<std::filesystem::path> served_root(const std::filesystem::path& data_dir,
                                          std::string_view configured,
                                          std::string_view default_name);

}  // namespace lab::bootstrap::serve
