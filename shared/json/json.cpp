#include "shared/json/json.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/stream_parser.hpp>
#include <fmt/format.h>

#include <cmath>

namespace lab::shared::json {
namespace {

std::string_view kind_name(boost::json::kind k) {
  switch (k) {
    case boost::json::kind::null:
      return "null";
    case boost::json::kind::bool_:
      return "a boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
    case boost::json::kind::double_:
      return "a number";
    case boost::json::kind::string:
      return "a string";
    case boost::json::kind::array:
      return "an array";
    case boost::json::kind::object:
      return "an object";
  }
  return "a value";
}

Result<const boost::json::value*> field(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) {
    return Error(JsonError::missing_field, fmt::format("field '{}' is missing", key));
  }
  return v;
}

Error wrong(std::string_view key, std::string_view expected, const boost::json::value& v) {
  return {JsonError::wrong_type,
          fmt::format("field '{}': expected {}, got {}", key, expected, kind_name(v.kind()))};
}

void pretty_into(std::string& out, const boost::json::value& v, int indent) {
  const std::string pad(static_cast<std::size_t>(indent) * 2, ' ');
  const std::string inner(static_cast<std::size_t>(indent + 1) * 2, ' ');
  if (const auto* o = v.if_object()) {
    if (o->empty()) {
      out += "{}";
      return;
    }
    out += "{\n";
    bool first = true;
    for (const auto& kv : *o) {
      if (!first)
        out += ",\n";
      first = false;
      out += inner;
      out += boost::json::serialize(boost::json::value(kv.key()));
      out += ": ";
      pretty_into(out, kv.value(), indent + 1);
    }
    out += "\n" + pad + "}";
  } else if (const auto* a = v.if_array()) {
    if (a->empty()) {
      out += "[]";
      return;
    }
    out += "[\n";
    for (std::size_t i = 0; i < a->size(); ++i) {
      if (i > 0)
        out += ",\n";
      out += inner;
      pretty_into(out, (*a)[i], indent + 1);
    }
    out += "\n" + pad + "]";
  } else if (v.is_double() && std::isfinite(v.get_double())) {
    out += fmt::format("{}", v.get_double());  // 29.991, where serialize() writes 2.9991E1
  } else {
    out += boost::json::serialize(v);
  }
}

}  // namespace

const boost::system::error_category& json_category() noexcept {
  static const ErrorCategory<JsonError> kCategory("lab.json",
                                                  [](JsonError e) noexcept -> const char* {
                                                    switch (e) {
                                                      case JsonError::syntax:
                                                        return "invalid JSON";
                                                      case JsonError::too_deep:
                                                        return "JSON nested too deeply";
                                                      case JsonError::too_large:
                                                        return "JSON document too large";
                                                      case JsonError::not_an_object:
                                                        return "JSON object expected";
                                                      case JsonError::missing_field:
                                                        return "missing field";
                                                      case JsonError::wrong_type:
                                                        return "field of the wrong type";
                                                      case JsonError::invalid_value:
                                                        return "invalid field value";
                                                    }
                                                    return "json error";
                                                  });
  return kCategory;
}

Result<boost::json::value> parse(std::string_view text, const ParseLimits& limits) {
  if (text.size() > limits.max_size) {
    return Error(JsonError::too_large,
                 fmt::format("JSON of {} bytes, at most {}", text.size(), limits.max_size));
  }
  boost::json::parse_options options;
  options.max_depth = limits.max_depth;
  boost::json::stream_parser p(boost::json::storage_ptr(), options);
  boost::system::error_code ec;
  const std::size_t used = p.write_some(text.data(), text.size(), ec);
  if (!ec && used < text.size()) {
    ec = boost::json::error::extra_data;
  }
  if (!ec) {
    p.finish(ec);
  }
  if (ec) {
    const auto code = ec == boost::json::error::too_deep ? JsonError::too_deep : JsonError::syntax;
    return Error(code, fmt::format("JSON at byte {}: {}", used, ec.message()));
  }
  return p.release();
}

Result<boost::json::object> parse_object(std::string_view text, const ParseLimits& limits) {
  LAB_TRY_ASSIGN(boost::json::value v, parse(text, limits));
  if (!v.is_object()) {
    return Error(JsonError::not_an_object,
                 fmt::format("expected a JSON object, got {}", kind_name(v.kind())));
  }
  return std::move(v.as_object());
}

std::string to_string(const boost::json::value& v) {
  return boost::json::serialize(v);
}

std::string pretty(const boost::json::value& v) {
  std::string out;
  pretty_into(out, v, 0);
  out += '\n';
  return out;
}

Result<std::string> get_string(const boost::json::object& o, std::string_view key) {
  LAB_TRY_ASSIGN(const boost::json::value* v, field(o, key));
  if (!v->is_string())
    return wrong(key, "a string", *v);
  return std::string(v->as_string());
}

Result<std::int64_t> get_int(const boost::json::object& o, std::string_view key) {
  LAB_TRY_ASSIGN(const boost::json::value* v, field(o, key));
  if (v->is_int64())
    return v->as_int64();
  if (v->is_uint64() && v->as_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
    return static_cast<std::int64_t>(v->as_uint64());
  }
  return wrong(key, "an integer", *v);
}

Result<bool> get_bool(const boost::json::object& o, std::string_view key) {
  LAB_TRY_ASSIGN(const boost::json::value* v, field(o, key));
  if (!v->is_bool())
    return wrong(key, "a boolean", *v);
  return v->as_bool();
}

Result<const boost::json::object*> get_object(const boost::json::object& o, std::string_view key) {
  LAB_TRY_ASSIGN(const boost::json::value* v, field(o, key));
  if (!v->is_object())
    return wrong(key, "an object", *v);
  return &v->as_object();
}

Result<const boost::json::array*> get_array(const boost::json::object& o, std::string_view key) {
  LAB_TRY_ASSIGN(const boost::json::value* v, field(o, key));
  if (!v->is_array())
    return wrong(key, "an array", *v);
  return &v->as_array();
}

Result<std::vector<std::string>> get_strings(const boost::json::object& o, std::string_view key) {
  LAB_TRY_ASSIGN(const boost::json::array* a, get_array(o, key));
  std::vector<std::string> out;
  out.reserve(a->size());
  for (std::size_t i = 0; i < a->size(); ++i) {
    if (!(*a)[i].is_string()) {
      return wrong(fmt::format("{}[{}]", key, i), "a string", (*a)[i]);
    }
    out.emplace_back((*a)[i].as_string());
  }
  return out;
}

Result<std::optional<std::string>> optional_string(const boost::json::object& o,
                                                   std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || v->is_null())
    return std::optional<std::string>();
  if (!v->is_string())
    return wrong(key, "a string", *v);
  return std::optional<std::string>(std::string(v->as_string()));
}

Result<std::optional<std::int64_t>> optional_int(const boost::json::object& o,
                                                 std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || v->is_null())
    return std::optional<std::int64_t>();
  LAB_TRY_ASSIGN(std::int64_t i, get_int(o, key));
  return std::optional<std::int64_t>(i);
}

}  // namespace lab::shared::json
