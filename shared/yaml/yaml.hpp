#pragma once
// JSON documents written as YAML (`--output yaml`), through libyaml's emitter: block style,
// keys in the document's order, and a string that YAML would read as another type ("true",
// "1.5", "null", "") quoted so that it reads back as the same string.

#include "shared/errors/error.hpp"

#include <boost/json/value.hpp>

#include <string>

namespace lab::shared::yaml {

/// One YAML document ("---" first, newline-terminated) holding `value`.
Result<std::string> to_yaml(const boost::json::value& value);

}  // namespace lab::shared::yaml
