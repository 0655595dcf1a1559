#include "shared/yaml/yaml.hpp"

#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <yaml.h>

#include <memory>
#include <regex>
#include <string_view>

namespace lab::shared::yaml {
namespace {

namespace json = boost::json;

// Whether a plain scalar with this text would be read as something other than a string
// (YAML 1.1 as libyaml and PyYAML resolve it, and 1.2's core schema): then it is quoted.
bool needs_quotes(std::string_view s) {
  static const std::regex kOther(
      "|~|null|Null|NULL|true|True|TRUE|false|False|FALSE|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|"
      "OFF|y|Y|n|N|[-+]?(0|[1-9][0-9_]*)|0[0-7_]+|0x[0-9a-fA-F_]+|0b[01_]+|"
      "[-+]?([0-9][0-9_]*)?\\.[0-9_]*([eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+|"
      "[-+]?\\.(inf|Inf|INF)|\\.(nan|NaN|NAN)|[0-9][0-9_]*(:[0-5]?[0-9])+(\\.[0-9_]*)?|"
      "[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ].*)?");
  return std::regex_match(s.begin(), s.end(), kOther);
}

class Emitter {
 public:
  Emitter() {
    ok_ = yaml_emitter_initialize(&emitter_) == 1;
    if (ok_) {
      yaml_emitter_set_output(&emitter_, &Emitter::write, &out_);
      yaml_emitter_set_unicode(&emitter_, 1);
      yaml_emitter_set_width(&emitter_, -1);  // never fold a long string
    }
  }
  Emitter(const Emitter&) = delete;
  Emitter& operator=(const Emitter&) = delete;
  ~Emitter() {
    if (ok_)
      yaml_emitter_delete(&emitter_);
  }

  Result<std::string> document(const json::value& v) {
    if (!ok_)
      return fail("cannot initialise the YAML emitter");
    yaml_event_t e;
    yaml_stream_start_event_initialize(&e, YAML_UTF8_ENCODING);
    if (!emit(e))
      return fail(problem());
    yaml_document_start_event_initialize(&e, nullptr, nullptr, nullptr, 0);
    if (!emit(e) || !value(v))
      return fail(problem());
    yaml_document_end_event_initialize(&e, 1);
    if (!emit(e))
      return fail(problem());
    yaml_stream_end_event_initialize(&e);
    if (!emit(e) || yaml_emitter_flush(&emitter_) != 1)
      return fail(problem());
    return std::move(out_);
  }

 private:
  static int write(void* data, unsigned char* buffer, size_t size) {
    static_cast<std::string*>(data)->append(reinterpret_cast<const char*>(buffer), size);
    return 1;
  }
  static Error fail(const std::string& why) {
    return {boost::system::errc::make_error_code(boost::system::errc::invalid_argument),
            "YAML output: " + why};
  }
  std::string problem() const {
    return emitter_.problem != nullptr ? emitter_.problem : "the emitter failed";
  }
  bool emit(yaml_event_t& e) { return yaml_emitter_emit(&emitter_, &e) == 1; }

  bool scalar(std::string_view text, yaml_scalar_style_t style) {
    yaml_event_t e;
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-const-cast): libyaml copies the text
    auto* p = reinterpret_cast<yaml_char_t*>(const_cast<char*>(text.data()));
    // Implicit: no tag is written; the emitter picks plain or quoted within `style`.
    if (yaml_scalar_event_initialize(&e, nullptr, nullptr, p, static_cast<int>(text.size()), 1, 1,
                                     style) != 1) {
      return false;
    }
    return emit(e);
  }

  bool string(std::string_view s) {
    if (needs_quotes(s))
      return scalar(s, YAML_DOUBLE_QUOTED_SCALAR_STYLE);
    // Multi-line text reads best as a literal block; the emitter falls back when it cannot.
    const bool multiline = s.find('\n') != std::string_view::npos;
    return scalar(s, multiline ? YAML_LITERAL_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE);
  }

  bool value(const json::value& v) {
    yaml_event_t e;
    switch (v.kind()) {
      case json::kind::object:
        yaml_mapping_start_event_initialize(&e, nullptr, nullptr, 1, YAML_BLOCK_MAPPING_STYLE);
        if (!emit(e))
          return false;
        for (const auto& [k, item] : v.get_object()) {
          if (!string(k) || !value(item))
            return false;
        }
        yaml_mapping_end_event_initialize(&e);
        return emit(e);
      case json::kind::array:
        yaml_sequence_start_event_initialize(&e, nullptr, nullptr, 1, YAML_BLOCK_SEQUENCE_STYLE);
        if (!emit(e))
          return false;
        for (const auto& item : v.get_array()) {
          if (!value(item))
            return false;
        }
        yaml_sequence_end_event_initialize(&e);
        return emit(e);
      case json::kind::string:
        return string(v.get_string());
      case json::kind::null:
        return scalar("null", YAML_PLAIN_SCALAR_STYLE);
      case json::kind::double_:  // the shortest text that reads back as the same double
        return scalar(fmt::format("{}", v.get_double()), YAML_PLAIN_SCALAR_STYLE);
      default:  // integers and booleans: their JSON text is their YAML text
        return scalar(json::serialize(v), YAML_PLAIN_SCALAR_STYLE);
    }
  }

  yaml_emitter_t emitter_{};
  bool ok_ = false;
  std::string out_;
};

}  // namespace

Result<std::string> to_yaml(const boost::json::value& value) {
  Emitter emitter;
  return emitter.document(value);
}

}  // namespace lab::shared::yaml
