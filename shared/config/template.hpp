#pragma once
// The default configuration file a package installs: every key of a schema commented out with
// its help, what it accepts and its default, so uncommenting a line sets that key and a file
// left as installed changes nothing.

#include "shared/config/config.hpp"

#include <string>
#include <string_view>

namespace lab::shared::config {

/// `header` (one comment line per line) then every key; [[table]] keys last, as TOML needs.
std::string commented_template(const Schema& schema, std::string_view header);

}  // namespace lab::shared::config
