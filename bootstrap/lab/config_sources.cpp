#include "bootstrap/lab/config_sources.hpp"

namespace lab::bootstrap::commands {

Result<shared::config::Sources> config_sources(const std::vector<std::string>& files,
                                               const std::vector<std::string>& sets,
                                               std::vector<shared::config::Flag> flags) {
  shared::config::Sources sources;
  if (files.empty()) {
    // Every /etc/lab/*.toml but the agent's own: an appliance may run labd too.
    for (auto& f : shared::config::files_in("/etc/lab")) {
      if (f.filename() != "labd.toml") {
        sources.files.push_back(std::move(f));
      }
    }
  } else {
    sources.files.assign(files.begin(), files.end());
  }
  sources.environment = shared::config::process_environment();
  for (const auto& set : sets) {
    const auto eq = set.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Error(shared::config::ConfigError::invalid_value,
                   "--set '" + set + "': expected KEY=VALUE, like --set dhcp.mode=proxy");
    }
    sources.flags.push_back({set.substr(0, eq), set.substr(eq + 1), "--set " + set.substr(0, eq)});
  }
  // Dedicated flags (--data-dir) come last: they win over --set of the same key.
  for (auto& f : flags)
    sources.flags.push_back(std::move(f));
  return sources;
}

}  // namespace lab::bootstrap::commands
