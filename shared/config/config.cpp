#include "shared/config/config.hpp"

#include "shared/text/suggest.hpp"

#include <fmt/format.h>
// toml++ is compiled into this file (shared/config/CMakeLists.txt). Its parser asserts on some
// malformed keys that it otherwise reports as parse errors; the packaged libtomlplusplus it
// replaces is built with NDEBUG, and configuration text is untrusted input, so its internal
// asserts stay off in every build type.
#define TOML_ASSERT(expr) static_cast<void>(0)
#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace lab::shared::config {

const boost::system::error_category& config_category() noexcept {
  static const ErrorCategory<ConfigError> kCategory("lab.config",
                                                    [](ConfigError e) noexcept -> const char* {
                                                      switch (e) {
                                                        case ConfigError::file_unreadable:
                                                          return "config file unreadable";
                                                        case ConfigError::syntax:
                                                          return "config syntax error";
                                                        case ConfigError::unknown_key:
                                                          return "unknown config key";
                                                        case ConfigError::wrong_type:
                                                          return "config value has the wrong type";
                                                        case ConfigError::invalid_value:
                                                          return "invalid config value";
                                                      }
                                                      return "config error";
                                                    });
  return kCategory;
}

std::string_view type_name(Type t) noexcept {
  switch (t) {
    case Type::string:
      return "a string";
    case Type::integer:
      return "an integer";
    case Type::boolean:
      return "a boolean";
    case Type::duration:
      return "a duration (seconds, or a string like \"90s\", \"15m\", \"12h\", \"7d\")";
    case Type::string_list:
      return "an array of strings";
    case Type::integer_list:
      return "an array of integers";
    case Type::table_list:
      return "an array of tables";
  }
  return "a value";
}

// ---- Schema ---------------------------------------------------------------------------------

Schema& Schema::add(KeySpec spec) {
  if (find(spec.key) != nullptr) {
    throw std::logic_error("config key declared twice: " + spec.key);
  }
  keys_.push_back(std::move(spec));
  return *this;
}

namespace {
KeySpec make_spec(std::string key, Type type, Value def, std::string help) {
  KeySpec spec;
  spec.key = std::move(key);
  spec.type = type;
  spec.default_value = std::move(def);
  spec.help = std::move(help);
  return spec;
}
}  // namespace

Schema& Schema::string(std::string key, std::string def, std::string help) {
  return add(make_spec(std::move(key), Type::string, std::move(def), std::move(help)));
}

Schema& Schema::choice(std::string key, std::string def, std::vector<std::string> choices,
                       std::string help) {
  KeySpec spec = make_spec(std::move(key), Type::string, def, std::move(help));
  if (std::find(choices.begin(), choices.end(), def) == choices.end()) {
    throw std::logic_error("config key " + spec.key + ": default is not one of its choices");
  }
  spec.choices = std::move(choices);
  return add(std::move(spec));
}

Schema& Schema::integer(std::string key, std::int64_t def, std::string help, std::int64_t min,
                        std::int64_t max) {
  KeySpec spec = make_spec(std::move(key), Type::integer, def, std::move(help));
  spec.min = min;
  spec.max = max;
  return add(std::move(spec));
}

Schema& Schema::boolean(std::string key, bool def, std::string help) {
  return add(make_spec(std::move(key), Type::boolean, def, std::move(help)));
}

Schema& Schema::duration(std::string key, std::chrono::seconds def, std::string help) {
  KeySpec spec = make_spec(std::move(key), Type::duration, def, std::move(help));
  spec.min = 0;
  return add(std::move(spec));
}

Schema& Schema::strings(std::string key, std::vector<std::string> def, std::string help) {
  return add(make_spec(std::move(key), Type::string_list, std::move(def), std::move(help)));
}

Schema& Schema::integers(std::string key, std::vector<std::int64_t> def, std::string help) {
  return add(make_spec(std::move(key), Type::integer_list, std::move(def), std::move(help)));
}

Schema& Schema::tables(std::string key, Schema element, std::string help) {
  KeySpec spec =
      make_spec(std::move(key), Type::table_list, std::vector<Config>{}, std::move(help));
  spec.element_schema = std::make_shared<const Schema>(std::move(element));
  return add(std::move(spec));
}

const KeySpec* Schema::find(std::string_view key) const {
  auto it =
      std::find_if(keys_.begin(), keys_.end(), [&](const KeySpec& k) { return k.key == key; });
  return it == keys_.end() ? nullptr : &*it;
}

bool Schema::is_table(std::string_view prefix) const {
  return std::any_of(keys_.begin(), keys_.end(), [&](const KeySpec& k) {
    return k.key.size() > prefix.size() && k.key.starts_with(prefix) && k.key[prefix.size()] == '.';
  });
}

std::string Schema::env_name(std::string_view key) {
  std::string out = "LAB_";
  for (char c : key) {
    out += (c == '.' || c == '-') ? '_'
                                  : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

// ---- Config ---------------------------------------------------------------------------------

const Config::Entry& Config::entry(std::string_view key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    throw std::logic_error("config key not declared: " + std::string(key));
  }
  return it->second;
}

namespace {
template <class T>
const T& get_as(const Value& v, std::string_view key) {
  if (const T* p = std::get_if<T>(&v)) {
    return *p;
  }
  throw std::logic_error("config key read with the wrong type: " + std::string(key));
}
}  // namespace

const std::string& Config::string(std::string_view key) const {
  return get_as<std::string>(entry(key).value, key);
}
std::int64_t Config::integer(std::string_view key) const {
  return get_as<std::int64_t>(entry(key).value, key);
}
bool Config::boolean(std::string_view key) const {
  return get_as<bool>(entry(key).value, key);
}
std::chrono::seconds Config::duration(std::string_view key) const {
  return get_as<std::chrono::seconds>(entry(key).value, key);
}
const std::vector<std::string>& Config::strings(std::string_view key) const {
  return get_as<std::vector<std::string>>(entry(key).value, key);
}
const std::vector<std::int64_t>& Config::integers(std::string_view key) const {
  return get_as<std::vector<std::int64_t>>(entry(key).value, key);
}
const std::vector<Config>& Config::tables(std::string_view key) const {
  return get_as<std::vector<Config>>(entry(key).value, key);
}
const Origin& Config::origin(std::string_view key) const {
  return entry(key).origin;
}
bool Config::is_default(std::string_view key) const {
  return entry(key).origin.kind == Origin::Kind::default_value;
}

std::vector<std::string> Config::keys() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [k, _] : entries_) {
    out.push_back(k);
  }
  return out;
}

// ---- Durations ------------------------------------------------------------------------------

Result<std::chrono::seconds> parse_duration(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Error(ConfigError::invalid_value,
                 "duration '" + std::string(text) + "': " + std::string(why) +
                     " (use seconds or units s, m, h, d, like \"90s\", \"1h30m\", \"7d\")");
  };
  if (text.empty()) {
    return bad("empty");
  }
  constexpr std::int64_t kMax = std::int64_t{100} * 365 * 86400;  // a century is plenty
  std::int64_t total = 0;
  std::size_t i = 0;
  bool bare_number = true;
  while (i < text.size()) {
    std::int64_t n = 0;
    const char* begin = text.data() + i;
    auto [ptr, ec] = std::from_chars(begin, text.data() + text.size(), n);
    if (ec != std::errc() || ptr == begin || n < 0) {
      return bad("expected a number at position " + std::to_string(i + 1));
    }
    i = static_cast<std::size_t>(ptr - text.data());
    std::int64_t unit = 1;
    if (i < text.size()) {
      switch (text[i]) {
        case 's':
          unit = 1;
          break;
        case 'm':
          unit = 60;
          break;
        case 'h':
          unit = 3600;
          break;
        case 'd':
          unit = 86400;
          break;
        default:
          return bad("unknown unit '" + std::string(1, text[i]) + "'");
      }
      ++i;
      bare_number = false;
    } else if (!bare_number) {
      return bad("number without a unit at the end");
    }
    if (n > kMax / unit || total > kMax - n * unit) {
      return bad("too long");
    }
    total += n * unit;
  }
  return std::chrono::seconds(total);
}

std::string format_duration(std::chrono::seconds d) {
  std::int64_t s = d.count();
  if (s == 0) {
    return "0s";
  }
  std::string out;
  for (auto [unit, suffix] : {std::pair{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}}) {
    if (s >= unit) {
      out += std::to_string(s / unit);
      out += suffix;
      s %= unit;
    }
  }
  return out;
}

// ---- Loading --------------------------------------------------------------------------------

namespace {

std::string closest_key(const Schema& schema, std::string_view key) {
  std::vector<std::string> keys;
  for (const auto& k : schema.keys())
    keys.push_back(k.key);
  return text::closest(key, keys);
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty())
      out += ", ";
    out += s;
  }
  return out;
}

Result<void> check_range(const KeySpec& spec, std::int64_t v, const std::string& where) {
  if (v < spec.min || v > spec.max) {
    return Error(ConfigError::invalid_value,
                 where + ": key '" + spec.key + "': " + std::to_string(v) + " is out of range [" +
                     std::to_string(spec.min) + ", " + std::to_string(spec.max) + "]");
  }
  return {};
}

Result<void> check_choice(const KeySpec& spec, const std::string& v, const std::string& where) {
  if (!spec.choices.empty() &&
      std::find(spec.choices.begin(), spec.choices.end(), v) == spec.choices.end()) {
    return Error(ConfigError::invalid_value, where + ": key '" + spec.key + "': '" + v +
                                                 "' is not one of: " + joined(spec.choices));
  }
  return {};
}

Result<bool> parse_bool_text(std::string_view t) {
  if (t == "true" || t == "1" || t == "yes" || t == "on")
    return true;
  if (t == "false" || t == "0" || t == "no" || t == "off")
    return false;
  return Error(ConfigError::invalid_value,
               "'" + std::string(t) + "' is not a boolean (true/false)");
}

Result<std::int64_t> parse_int_text(std::string_view t) {
  std::int64_t v = 0;
  auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || ptr != t.data() + t.size()) {
    return Error(ConfigError::invalid_value, "'" + std::string(t) + "' is not an integer");
  }
  return v;
}

std::vector<std::string> split_list(std::string_view t) {
  std::vector<std::string> out;
  while (!t.empty()) {
    auto comma = t.find(',');
    std::string_view item = t.substr(0, comma);
    while (!item.empty() && item.front() == ' ')
      item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ')
      item.remove_suffix(1);
    if (!item.empty())
      out.emplace_back(item);
    if (comma == std::string_view::npos)
      break;
    t.remove_prefix(comma + 1);
  }
  return out;
}

// A value given as text (environment variable or flag), converted by the key's type.
Result<Value> from_text(const KeySpec& spec, std::string_view text, const std::string& where) {
  auto wrap = [&](const Error& e) {
    return Error(e.code(), fmt::format("{}: key '{}': {}", where, spec.key, e.detail()));
  };
  switch (spec.type) {
    case Type::string: {
      std::string v(text);
      LAB_TRY(check_choice(spec, v, where));
      return Value(std::move(v));
    }
    case Type::integer: {
      auto v = parse_int_text(text);
      if (!v)
        return wrap(v.error());
      LAB_TRY(check_range(spec, *v, where));
      return Value(*v);
    }
    case Type::boolean: {
      auto v = parse_bool_text(text);
      if (!v)
        return wrap(v.error());
      return Value(*v);
    }
    case Type::duration: {
      auto v = parse_duration(text);
      if (!v)
        return wrap(v.error());
      return Value(*v);
    }
    case Type::string_list:
      return Value(split_list(text));
    case Type::integer_list: {
      std::vector<std::int64_t> out;
      for (const auto& item : split_list(text)) {
        auto v = parse_int_text(item);
        if (!v)
          return wrap(v.error());
        out.push_back(*v);
      }
      return Value(std::move(out));
    }
    case Type::table_list:
      return Error(ConfigError::invalid_value,
                   where + ": key '" + spec.key + "' can only be set in a config file");
  }
  return Error(ConfigError::invalid_value, where);
}

}  // namespace

// Walks TOML tables against the schema; a class so Config can befriend it.
class Loader {
 public:
  explicit Loader(const Schema& schema) : schema_(schema) {
    for (const auto& k : schema.keys()) {
      config_.entries_[k.key] = Config::Entry{k.default_value, Origin{}};
    }
  }

  Result<void> apply_toml(const toml::table& table, const std::string& source) {
    return walk(table, "", source);
  }

  Result<void> apply_text(const KeySpec& spec, std::string_view text, Origin origin) {
    LAB_TRY_ASSIGN(Value v, from_text(spec, text, origin.where));
    config_.entries_[spec.key] = Config::Entry{std::move(v), std::move(origin)};
    return {};
  }

  Config take() { return std::move(config_); }

 private:
  static std::string at(const std::string& source, const toml::node& node) {
    return source + ":" + std::to_string(node.source().begin.line);
  }

  Result<void> walk(const toml::table& table, const std::string& prefix,
                    const std::string& source) {
    for (const auto& [k, node] : table) {
      std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
      const std::string where = source + ":" + std::to_string(k.source().begin.line);
      if (const KeySpec* spec = schema_.find(key)) {
        LAB_TRY_ASSIGN(Value v, convert(*spec, node, where, source));
        config_.entries_[key] = Config::Entry{std::move(v), Origin{Origin::Kind::file, where}};
      } else if (schema_.is_table(key)) {
        if (!node.is_table()) {
          return Error(ConfigError::wrong_type,
                       fmt::format("{}: key '{}': expected a table", where, key));
        }
        LAB_TRY(walk(*node.as_table(), key, source));
      } else {
        std::string hint = closest_key(schema_, key);
        return Error(ConfigError::unknown_key,
                     fmt::format("{}: unknown key '{}'{}", where, key,
                                 hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
      }
    }
    return {};
  }

  static Error type_error(const KeySpec& spec, const std::string& where, const toml::node& node) {
    std::string got;
    switch (node.type()) {
      case toml::node_type::string:
        got = "a string";
        break;
      case toml::node_type::integer:
        got = "an integer";
        break;
      case toml::node_type::floating_point:
        got = "a float";
        break;
      case toml::node_type::boolean:
        got = "a boolean";
        break;
      case toml::node_type::array:
        got = "an array";
        break;
      case toml::node_type::table:
        got = "a table";
        break;
      default:
        got = "a date/time";
        break;
    }
    return Error(ConfigError::wrong_type, where + ": key '" + spec.key + "': expected " +
                                              std::string(type_name(spec.type)) + ", got " + got);
  }

  static Result<Value> convert(const KeySpec& spec, const toml::node& node,
                               const std::string& where, const std::string& source) {
    switch (spec.type) {
      case Type::string: {
        const auto* s = node.as_string();
        if (s == nullptr)
          return type_error(spec, where, node);
        LAB_TRY(check_choice(spec, s->get(), where));
        return Value(s->get());
      }
      case Type::integer: {
        const auto* i = node.as_integer();
        if (i == nullptr)
          return type_error(spec, where, node);
        LAB_TRY(check_range(spec, i->get(), where));
        return Value(i->get());
      }
      case Type::boolean: {
        const auto* b = node.as_boolean();
        if (b == nullptr)
          return type_error(spec, where, node);
        return Value(b->get());
      }
      case Type::duration: {
        if (const auto* i = node.as_integer()) {
          LAB_TRY(check_range(spec, i->get(), where));
          return Value(std::chrono::seconds(i->get()));
        }
        if (const auto* s = node.as_string()) {
          auto d = parse_duration(s->get());
          if (!d)
            return Error(d.error().code(),
                         where + ": key '" + spec.key + "': " + d.error().detail());
          return Value(*d);
        }
        return type_error(spec, where, node);
      }
      case Type::string_list: {
        const auto* a = node.as_array();
        if (a == nullptr)
          return type_error(spec, where, node);
        std::vector<std::string> out;
        for (const auto& item : *a) {
          const auto* s = item.as_string();
          if (s == nullptr)
            return type_error(spec, at(source, item), item);
          out.push_back(s->get());
        }
        return Value(std::move(out));
      }
      case Type::integer_list: {
        const auto* a = node.as_array();
        if (a == nullptr)
          return type_error(spec, where, node);
        std::vector<std::int64_t> out;
        for (const auto& item : *a) {
          const auto* i = item.as_integer();
          if (i == nullptr)
            return type_error(spec, at(source, item), item);
          out.push_back(i->get());
        }
        return Value(std::move(out));
      }
      case Type::table_list: {
        const auto* a = node.as_array();
        if (a == nullptr || !a->is_array_of_tables())
          return type_error(spec, where, node);
        std::vector<Config> out;
        for (const auto& item : *a) {
          Loader inner(*spec.element_schema);
          auto r = inner.walk(*item.as_table(), "", source);
          if (!r) {
            Error e = r.error();
            return Error(e.code(), e.detail() + " (in [[" + spec.key + "]] #" +
                                       std::to_string(out.size() + 1) + ")");
          }
          out.push_back(inner.take());
        }
        return Value(std::move(out));
      }
    }
    return type_error(spec, where, node);
  }

  const Schema& schema_;
  Config config_;
};

Result<Config> load(const Schema& schema, const Sources& sources) {
  Loader loader(schema);

  auto apply_document = [&](std::string_view text, const std::string& name) -> Result<void> {
    try {
      toml::table table = toml::parse(text, std::string_view(name));
      return loader.apply_toml(table, name);
    } catch (const toml::parse_error& e) {
      return Error(ConfigError::syntax, name + ":" + std::to_string(e.source().begin.line) + ":" +
                                            std::to_string(e.source().begin.column) + ": " +
                                            std::string(e.description()));
    }
  };

  for (const auto& path : sources.files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      return Error(ConfigError::file_unreadable, path.string() + ": cannot open for reading");
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    LAB_TRY(apply_document(buf.str(), path.string()));
  }
  for (const auto& [name, text] : sources.texts) {
    LAB_TRY(apply_document(text, name));
  }
  for (const auto& spec : schema.keys()) {
    if (spec.type == Type::table_list)
      continue;
    std::string name = Schema::env_name(spec.key);
    if (auto it = sources.environment.find(name); it != sources.environment.end()) {
      LAB_TRY(loader.apply_text(spec, it->second, Origin{Origin::Kind::environment, name}));
    }
  }
  for (const auto& flag : sources.flags) {
    std::string name = flag.name;
    if (name.empty()) {
      name = "--" + flag.key;
      std::replace(name.begin(), name.end(), '.', '-');
      std::replace(name.begin(), name.end(), '_', '-');
    }
    const KeySpec* spec = schema.find(flag.key);
    if (spec == nullptr) {
      const std::string hint = closest_key(schema, flag.key);
      return Error(ConfigError::unknown_key,
                   fmt::format("{}: unknown key '{}'{}", name, flag.key,
                               hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
    }
    LAB_TRY(loader.apply_text(*spec, flag.value, Origin{Origin::Kind::flag, name}));
  }
  return loader.take();
}

std::map<std::string, std::string, std::less<>> process_environment() {
  std::map<std::string, std::string, std::less<>> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    if (!entry.starts_with("LAB_"))
      continue;
    auto eq = entry.find('=');
    if (eq == std::string_view::npos)
      continue;
    out.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return out;
}

std::vector<std::filesystem::path> files_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".toml" && entry.is_regular_file(ec)) {
      out.push_back(entry.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace lab::shared::config
