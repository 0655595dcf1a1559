#include "shared/labels/label.hpp"

#include <cctype>

namespace lab::shared::labels {
namespace {

bool is_alnum(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0;
}

// DNS-1123 subdomain: lower-case labels of [a-z0-9-] joined by '.', each alnum at both ends.
std::string prefix_problem(std::string_view prefix) {
  if (prefix.empty())
    return "prefix before '/' must not be empty";
  if (prefix.size() > kMaxPrefixLength)
    return "prefix is longer than 253 characters";
  std::size_t start = 0;
  while (start <= prefix.size()) {
    std::size_t dot = prefix.find('.', start);
    if (dot == std::string_view::npos)
      dot = prefix.size();
    std::string_view part = prefix.substr(start, dot - start);
    if (part.empty())
      return "prefix has an empty DNS label";
    for (char c : part) {
      if (!(std::islower(static_cast<unsigned char>(c)) ||
            std::isdigit(static_cast<unsigned char>(c)) || c == '-')) {
        return "prefix has '" + std::string(1, c) +
               "' (a DNS subdomain: lower case, digits, '-', '.')";
      }
    }
    if (part.front() == '-' || part.back() == '-')
      return "prefix DNS label must not start or end with '-'";
    start = dot + 1;
  }
  return {};
}

}  // namespace

std::string name_problem(std::string_view name) {
  if (name.empty())
    return "must not be empty";
  if (name.size() > kMaxNameLength) {
    return "is " + std::to_string(name.size()) + " characters, at most 63 allowed";
  }
  if (!is_alnum(name.front()))
    return "must start with a letter or digit";
  if (!is_alnum(name.back()))
    return "must end with a letter or digit";
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (!is_alnum(c) && c != '-' && c != '_' && c != '.') {
      return "has '" + std::string(1, c) + "' at position " + std::to_string(i + 1) +
             " (allowed: letters, digits, '-', '_', '.')";
    }
  }
  return {};
}

const boost::system::error_category& label_category() noexcept {
  static const ErrorCategory<LabelError> kCategory("lab.labels",
                                                   [](LabelError e) noexcept -> const char* {
                                                     switch (e) {
                                                       case LabelError::invalid_key:
                                                         return "invalid label key";
                                                       case LabelError::invalid_value:
                                                         return "invalid label value";
                                                       case LabelError::invalid_list:
                                                         return "invalid label list";
                                                       case LabelError::selector_syntax:
                                                         return "invalid selector";
                                                     }
                                                     return "label error";
                                                   });
  return kCategory;
}

Result<void> validate_key(std::string_view key) {
  std::string_view name = key;
  if (auto slash = key.find('/'); slash != std::string_view::npos) {
    if (std::string p = prefix_problem(key.substr(0, slash)); !p.empty()) {
      return Error(LabelError::invalid_key, "label key '" + std::string(key) + "': " + p);
    }
    name = key.substr(slash + 1);
  }
  if (std::string p = name_problem(name); !p.empty()) {
    return Error(LabelError::invalid_key, "label key '" + std::string(key) + "': name " + p);
  }
  return {};
}

Result<void> validate_value(std::string_view value) {
  if (value.empty())
    return {};
  if (std::string p = name_problem(value); !p.empty()) {
    return Error(LabelError::invalid_value, "label value '" + std::string(value) + "' " + p);
  }
  return {};
}

Result<LabelSet> parse_list(std::string_view text) {
  LabelSet out;
  if (text.empty())
    return out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string_view::npos)
      comma = text.size();
    std::string_view item = text.substr(start, comma - start);
    const auto eq = item.find('=');
    if (eq == std::string_view::npos) {
      return Error(LabelError::invalid_list, "'" + std::string(item) + "' at position " +
                                                 std::to_string(start + 1) + " is not key=value");
    }
    std::string_view key = item.substr(0, eq);
    std::string_view value = item.substr(eq + 1);
    LAB_TRY(validate_key(key));
    LAB_TRY(validate_value(value));
    if (!out.emplace(key, value).second) {
      return Error(LabelError::invalid_list, "label key '" + std::string(key) + "' given twice");
    }
    start = comma + 1;
  }
  return out;
}

std::string format_list(const LabelSet& labels) {
  std::string out;
  for (const auto& [k, v] : labels) {
    if (!out.empty())
      out += ',';
    out += k;
    out += '=';
    out += v;
  }
  return out;
}

}  // namespace lab::shared::labels
