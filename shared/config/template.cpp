#include "shared/config/template.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <limits>

namespace lab::shared::config {
namespace {

// A TOML basic string: quotes, backslashes and control characters escaped.
std::string toml_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  return out + '"';
}

std::string value_text(const KeySpec& spec) {
  const Value& v = spec.default_value;
  switch (spec.type) {
    case Type::string:
      return toml_string(std::get<std::string>(v));
    case Type::integer:
      return std::to_string(std::get<std::int64_t>(v));
    case Type::boolean:
      return std::get<bool>(v) ? "true" : "false";
    case Type::duration:
      return toml_string(format_duration(std::get<std::chrono::seconds>(v)));
    case Type::string_list: {
      std::string out = "[";
      for (const auto& s : std::get<std::vector<std::string>>(v))
        out += (out.size() > 1 ? ", " : "") + toml_string(s);
      return out + "]";
    }
    case Type::integer_list:
      return fmt::format("[{}]", fmt::join(std::get<std::vector<std::int64_t>>(v), ", "));
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
