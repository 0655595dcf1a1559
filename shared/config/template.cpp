#include "shared/config/template.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include <limits>
#include <sstream>

namespace lab::shared::config {
namespace {

// A default as TOML writes it: toml++ quotes and escapes strings the way its parser reads them
// (basic "..." strings on one line, as the rest of the project's TOML is written).
template <class T>
std::string toml_text(const T& value) {
  std::ostringstream out;
  out << toml::toml_formatter(value, toml::format_flags::none);
  return out.str();
}

std::string value_text(const KeySpec& spec) {
  const Value& v = spec.default_value;
  switch (spec.type) {
    case Type::string:
      return toml_text(toml::value<std::string>(std::get<std::string>(v)));
    case Type::integer:
      return std::to_string(std::get<std::int64_t>(v));
    case Type::boolean:
      return std::get<bool>(v) ? "true" : "false";
    case Type::duration:
      return toml_text(
          toml::value<std::string>(format_duration(std::get<std::chrono::seconds>(v))));
    case Type::string_list: {
      toml::array a;
      for (const auto& s : std::get<std::vector<std::string>>(v))
        a.push_back(s);
      return toml_text(a);
    }
    case Type::integer_list: {
      toml::array a;
      for (const std::int64_t n : std::get<std::vector<std::int64_t>>(v))
        a.push_back(n);
      return toml_text(a);
    }
    case Type::table_list:
      break;
  }
  return {};
}

// What a value may be, beyond its type: the choices or the range.
std::string accepted(const KeySpec& spec) {
  if (!spec.choices.empty())
    return fmt::format("one of: {}", fmt::join(spec.choices, ", "));
  const bool low = spec.min != std::numeric_limits<std::int64_t>::min();
  const bool high = spec.max != std::numeric_limits<std::int64_t>::max();
  if (spec.type == Type::integer && (low || high)) {
    return fmt::format("{}..{}", low ? std::to_string(spec.min) : "",
                       high ? std::to_string(spec.max) : "");
  }
  return std::string(type_name(spec.type));
}

void comment_lines(std::string& out, std::string_view indent, std::string_view text) {
  // One comment line per line of help; long help stays on one line (editors wrap).
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto end = text.find('\n', start);
    const auto line = text.substr(start, end == std::string_view::npos ? end : end - start);
    out += fmt::format("{}# {}\n", indent, line);
    if (end == std::string_view::npos)
      break;
    start = end + 1;
  }
}

}  // namespace

std::string commented_template(const Schema& schema, std::string_view header) {
  std::string out;
  comment_lines(out, "", header);
  out += "#\n# Every key with its default, commented out: uncomment a line to change that key.\n";
  std::vector<const KeySpec*> tables;
  for (const auto& spec : schema.keys()) {
    if (spec.type == Type::table_list) {
      tables.push_back(&spec);  // [[table]] blocks end the top-level keys, so they go last
      continue;
    }
    out += '\n';
    comment_lines(out, "", fmt::format("{} ({})", spec.help, accepted(spec)));
    out += fmt::format("#{} = {}\n", spec.key, value_text(spec));
  }
  for (const KeySpec* spec : tables) {
    out += '\n';
    comment_lines(out, "", fmt::format("{} (repeat the block for more)", spec->help));
    out += fmt::format("#[[{}]]\n", spec->key);
    for (const auto& element : spec->element_schema->keys()) {
      out += fmt::format("#{} = {}  # {} ({})\n", element.key, value_text(element), element.help,
                         accepted(element));
    }
  }
  return out;
}

}  // namespace lab::shared::config
