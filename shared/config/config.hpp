#pragma once

#include "shared/errors/error.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace lab::shared::config {

enum class ConfigError {
  file_unreadable = 1,  // a named config file could not be read
  syntax,               // the TOML does not parse
  unknown_key,          // a key the schema does not declare
  wrong_type,           // a value of the wrong TOML type
  invalid_value,        // right type, unacceptable value (range, choice, duration syntax)
};
const boost::system::error_category& config_category() noexcept;
inline boost::system::error_code make_error_code(ConfigError e) noexcept {
  return {static_cast<int>(e), config_category()};
}

enum class Type { string, integer, boolean, duration, string_list, integer_list, table_list };
std::string_view type_name(Type t) noexcept;

class Config;
using Value =
    std::variant<std::string, std::int64_t, bool, std::chrono::seconds, std::vector<std::string>,
                 std::vector<std::int64_t>, std::vector<Config>>;

/// Where a value came from, for `--show-config` and for error messages.
struct Origin {
  enum class Kind { default_value, file, environment, flag };
  Kind kind = Kind::default_value;
  std::string where;  // "lab.toml:12", "LAB_DHCP_MODE", "--dhcp-mode"
};

/// Loaded, validated configuration. Reading a key the schema does not declare, or with the
/// wrong accessor, is a programming error and throws std::logic_error.
class Config {
 public:
  [[nodiscard]] const std::string& string(std::string_view key) const;
  [[nodiscard]] std::int64_t integer(std::string_view key) const;
  [[nodiscard]] bool boolean(std::string_view key) const;
  [[nodiscard]] std::chrono::seconds duration(std::string_view key) const;
  [[nodiscard]] const std::vector<std::string>& strings(std::string_view key) const;
  [[nodiscard]] const std::vector<std::int64_t>& integers(std::string_view key) const;
  [[nodiscard]] const std::vector<Config>& tables(std::string_view key) const;
  [[nodiscard]] const Origin& origin(std::string_view key) const;
  [[nodiscard]] bool is_default(std::string_view key) const;
  [[nodiscard]] std::vector<std::string> keys() const;

 private:
  friend class Loader;
  struct Entry {
    Value value;
    Origin origin;
  };
  const Entry& entry(std::string_view key) const;
  std::map<std::string, Entry, std::less<>> entries_;
};

class Schema;

/// One declared key. Integers and durations may carry a range, strings a set of choices.
struct KeySpec {
  std::string key;  // dotted path: "dhcp.lease_time"
  Type type = Type::string;
  Value default_value;
  std::string help;
  std::int64_t min = std::numeric_limits<std::int64_t>::min();
  std::int64_t max = std::numeric_limits<std::int64_t>::max();
  std::vector<std::string> choices;              // empty: any string
  std::shared_ptr<const Schema> element_schema;  // for table_list
};

/// The keys a program accepts, with types and defaults. Built once at start-up.
class Schema {
 public:
  Schema& string(std::string key, std::string def, std::string help);
  Schema& choice(std::string key, std::string def, std::vector<std::string> choices,
                 std::string help);
  Schema& integer(std::string key, std::int64_t def, std::string help,
                  std::int64_t min = std::numeric_limits<std::int64_t>::min(),
                  std::int64_t max = std::numeric_limits<std::int64_t>::max());
  Schema& boolean(std::string key, bool def, std::string help);
  Schema& duration(std::string key, std::chrono::seconds def, std::string help);
  Schema& strings(std::string key, std::vector<std::string> def, std::string help);
  Schema& integers(std::string key, std::vector<std::int64_t> def, std::string help);
  /// An array of tables ([[key]] in TOML), each checked against `element`. File-only.
  Schema& tables(std::string key, Schema element, std::string help);

  [[nodiscard]] const KeySpec* find(std::string_view key) const;
  [[nodiscard]] const std::vector<KeySpec>& keys() const noexcept { return keys_; }
  /// True when `prefix` names a table that holds declared keys ("dhcp" for "dhcp.mode").
  [[nodiscard]] bool is_table(std::string_view prefix) const;

  /// "LAB_DHCP_LEASE_TIME" for "dhcp.lease_time".
  static std::string env_name(std::string_view key);

 private:
  Schema& add(KeySpec spec);
  std::vector<KeySpec> keys_;
};

/// A value given on the command line, and how the user wrote it (for error messages).
struct Flag {
  std::string key;    // "dhcp.mode"
  std::string value;  // raw text, converted by the key's type
  std::string name;   // "--set dhcp.mode" or "--data-dir"; empty: "--dhcp-mode"
};

/// What to load, lowest precedence first: defaults < files (in order) < environment < flags.
struct Sources {
  std::vector<std::filesystem::path> files;                // must exist and parse
  std::vector<std::pair<std::string, std::string>> texts;  // (name, TOML) for tests and fuzzing
  std::map<std::string, std::string, std::less<>> environment;  // only LAB_* names are read
  std::vector<Flag> flags;                                      // from the command line
};

/// Loads and validates. Errors name the source (file:line, variable or flag) and the key.
Result<Config> load(const Schema& schema, const Sources& sources);

/// The LAB_* variables of this process.
std::map<std::string, std::string, std::less<>> process_environment();

/// The *.toml files of a directory in name order; none when it does not exist.
std::vector<std::filesystem::path> files_in(const std::filesystem::path& dir);

/// "90", "90s", "15m", "12h", "7d", "1h30m" → seconds. Rejects empty, negative, overflow.
Result<std::chrono::seconds> parse_duration(std::string_view text);
/// The shortest of those forms that says exactly `d`: "1h30m", "7d", "0s".
std::string format_duration(std::chrono::seconds d);

}  // namespace lab::shared::config

template <>
struct boost::system::is_error_code_enum<lab::shared::config::ConfigError> : std::true_type {};
