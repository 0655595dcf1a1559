#pragma once

#include "shared/errors/error.hpp"

#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lab::shared::json {

enum class JsonError {
  syntax = 1,     // not JSON; detail names the byte offset
  too_deep,       // nesting past the limit
  too_large,      // document past the size limit
  not_an_object,  // an object was expected
  missing_field,  // a required field is absent
  wrong_type,     // a field of the wrong type
  invalid_value,  // right type, unacceptable value
};
const boost::system::error_category& json_category() noexcept;
inline boost::system::error_code make_error_code(JsonError e) noexcept {
  return {static_cast<int>(e), json_category()};
}

struct ParseLimits {
  std::size_t max_size = std::size_t{16} * 1024 * 1024;
  std::size_t max_depth = 32;
};

/// Parses a whole document; errors say where ("at byte 17: expected ','").
Result<boost::json::value> parse(std::string_view text, const ParseLimits& limits = {});
/// Parses and requires an object at the top.
Result<boost::json::object> parse_object(std::string_view text, const ParseLimits& limits = {});

/// Compact serialisation.
std::string to_string(const boost::json::value& v);
/// Indented, for people (CLI `--output json`).
std::string pretty(const boost::json::value& v);

/// Typed access to an object's fields. Errors name the field: "field 'ttl': expected a
/// string, got a number". `optional_*` return nullopt when the field is absent or null.
Result<std::string> get_string(const boost::json::object& o, std::string_view key);
Result<std::int64_t> get_int(const boost::json::object& o, std::string_view key);
Result<bool> get_bool(const boost::json::object& o, std::string_view key);
Result<const boost::json::object*> get_object(const boost::json::object& o, std::string_view key);
Result<const boost::json::array*> get_array(const boost::json::object& o, std::string_view key);
Result<std::vector<std::string>> get_strings(const boost::json::object& o, std::string_view key);
Result<std::optional<std::string>> optional_string(const boost::json::object& o,
                                                   std::string_view key);
Result<std::optional<std::int64_t>> optional_int(const boost::json::object& o,
                                                 std::string_view key);

}  // namespace lab::shared::json

template <>
struct boost::system::is_error_code_enum<lab::shared::json::JsonError> : std::true_type {};
