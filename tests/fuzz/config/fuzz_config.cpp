// Config loader over arbitrary TOML text: every input yields a Config or a clear Error.
#include "shared/config/config.hpp"

#include <chrono>
#include <cstdint>
#include <string>

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer's entry point
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lab::shared::config;
  static const Schema kSchema = [] {
    Schema pool;
    pool.string("range", "", "").integer("prefix", 24, "", 0, 32);
    Schema s;
    s.string("data_dir", "/var/lib/lab", "")
        .integer("http.port", 8080, "", 0, 65535)
        .boolean("dhcp.enabled", true, "")
        .choice("dhcp.mode", "full", {"full", "proxy", "auto"}, "")
        .duration("dhcp.lease_time", std::chrono::hours(12), "")
        .strings("dhcp.interfaces", {}, "")
        .integers("agent.tpm_pcrs", {}, "")
        .tables("dhcp.subnet", pool, "");
    return s;
  }();
  Sources sources;
  sources.texts.emplace_back("fuzz.toml", std::string(reinterpret_cast<const char*>(data), size));
  auto config = load(kSchema, sources);
  if (!config && config.error().detail().empty())
    __builtin_trap();  // errors must say something
  return 0;
}
