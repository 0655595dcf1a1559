#pragma once
// Names of the things an operator creates and refers to (nodes, groups, secrets, operators,
// health checks): the one rule the CLI checks before sending and the coordinator checks on
// receipt, so a name the coordinator would refuse, or one that cannot be a URL path segment
// ("a/b", ".", ".."), is refused where it was typed.

#include "shared/errors/error.hpp"

#include <string>
#include <string_view>

namespace lab::shared::names {

enum class NameError {
  invalid_name = 1,  // detail names the kind, the value and what is wrong
};
const boost::system::error_category& name_category() noexcept;
inline boost::system::error_code make_error_code(NameError e) noexcept {
  return {static_cast<int>(e), name_category()};
}

enum class Kind { node, group, secret, operator_name, check };

/// "node", "group", "secret", "operator", "check".
std::string_view kind_name(Kind kind) noexcept;

/// What is wrong with `name` as a name of this kind, as words that follow it ("must start
/// with a letter or digit"); empty when it is a good one.
std::string problem(Kind kind, std::string_view name);

/// A name of 1–63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit
/// (a label value's rule); an operator's name is lower case. Node arguments take a node id as
/// well, which has the same form. invalid_name, naming the kind and the value, otherwise.
Result<void> check(Kind kind, std::string_view name);

}  // namespace lab::shared::names

template <>
struct boost::system::is_error_code_enum<lab::shared::names::NameError> : std::true_type {};
