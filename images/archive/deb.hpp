#pragma once

#include "images/archive/error.hpp"

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace lab::images {

/// Files taken out of a Debian package without installing it (what `dpkg -x` would unpack),
/// keyed by their path in the package without the leading "./" ("boot/vmlinuz-6.1.0-56-amd64").
using DebFiles = std::map<std::string, std::string>;

/// Reads `deb` (an ar archive holding data.tar.{xz,zst,gz}) and returns the regular files whose
/// path `wanted` accepts. One pass; only accepted files are held in memory.
Result<DebFiles> extract_from_deb(const std::filesystem::path& deb,
                                  const std::function<bool(std::string_view path)>& wanted);

}  // namespace lab::images
