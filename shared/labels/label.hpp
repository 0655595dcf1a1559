#pragma once

#include "shared/errors/error.hpp"

#include <map>
#include <string>
#include <string_view>

namespace lab::shared::labels {

enum class LabelError {
  invalid_key = 1,  // key breaks the Kubernetes rules ([prefix/]name)
  invalid_value,    // value breaks the Kubernetes rules
  invalid_list,     // "k=v,k2=v2" list that does not parse
  selector_syntax,  // a selector that does not parse; detail names the column
};
const boost::system::error_category& label_category() noexcept;
inline boost::system::error_code make_error_code(LabelError e) noexcept {
  return {static_cast<int>(e), label_category()};
}

/// Labels of one node, sorted by key.
using LabelSet = std::map<std::string, std::string, std::less<>>;

inline constexpr std::size_t kMaxNameLength = 63;
inline constexpr std::size_t kMaxPrefixLength = 253;

/// Why `name` is not a Kubernetes name (1–63 of [A-Za-z0-9_.-], starting and ending with a
/// letter or digit), as words that follow it ("must not be empty"); empty when it is one.
std::string name_problem(std::string_view name);

/// Kubernetes label key: optional DNS-subdomain prefix (≤253, lower case) and '/', then a
/// name of 1–63 characters [A-Za-z0-9_.-] that starts and ends alphanumeric.
Result<void> validate_key(std::string_view key);
/// Kubernetes label value: empty, or 1–63 characters like a key's name part.
Result<void> validate_value(std::string_view value);

/// "role=web,env=prod" → labels; every key and value validated, duplicates refused.
Result<LabelSet> parse_list(std::string_view text);
/// Inverse of parse_list: "env=prod,role=web" (sorted).
std::string format_list(const LabelSet& labels);

}  // namespace lab::shared::labels

template <>
struct boost::system::is_error_code_enum<lab::shared::labels::LabelError> : std::true_type {};
