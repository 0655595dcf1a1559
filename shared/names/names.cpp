#include "shared/names/names.hpp"

#include "shared/labels/label.hpp"

#include <algorithm>
#include <string>

namespace lab::shared::names {

const boost::system::error_category& name_category() noexcept {
  static const ErrorCategory<NameError> kCategory(
      "lab.names", [](NameError) noexcept { return "invalid name"; });
  return kCategory;
}

std::string_view kind_name(Kind kind) noexcept {
  switch (kind) {
    case Kind::node:
      return "node";
    case Kind::group:
      return "group";
    case Kind::secret:
      return "secret";
    case Kind::operator_name:
      return "operator";
    case Kind::check:
      return "check";
  }
  return "name";
}

std::string problem(Kind kind, std::string_view name) {
  std::string p = labels::name_problem(name);
  if (p.empty() && kind == Kind::operator_name &&
      std::any_of(name.begin(), name.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
    p = "has upper case letters (operator names are lower case)";
  }
  return p;
}

Result<void> check(Kind kind, std::string_view name) {
  std::string p = problem(kind, name);
  if (p.empty())
    return {};
  return Error(NameError::invalid_name,
               std::string(kind_name(kind)) + " name '" + std::string(name) + "' " + p);
}

}  // namespace lab::shared::names
