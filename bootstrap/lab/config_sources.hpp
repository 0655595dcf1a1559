#pragma once

#include "shared/config/config.hpp"

#include <string>
#include <vector>

namespace lab::bootstrap::commands {

/// Config sources from a command line: the files given with --config (or every
/// /etc/lab/*.toml when none is given), the process's LAB_* environment, and --set KEY=VALUE
/// overrides plus `flags` (key → value) from dedicated options. Fails on a --set without '='.
Result<shared::config::Sources> config_sources(const std::vector<std::string>& files,
                                               const std::vector<std::string>& sets,
                                               std::vector<shared::config::Flag> flags);

}  // namespace lab::bootstrap::commands
