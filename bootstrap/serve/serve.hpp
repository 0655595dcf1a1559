#pragma once

#include "shared/config/config.hpp"

#include <filesystem>
#include <vector>

namespace lab::bootstrap::serve {

/// The schema of `lab serve`: its own keys (data_dir, log.level, serve.*) and every
/// component's keys.
shared::config::Schema schema();

/// Runs the appliance until SIGTERM or SIGINT. Returns the process exit code; start-up
/// failures are printed to stderr with a hint.
int run(const shared::config::Config& config);

}  // namespace lab::bootstrap::serve
