#pragma once

#include <fmt/format.h>

#include <initializer_list>
#include <iosfwd>
#include <string>
#include <string_view>

namespace lab::shared::log {

enum class Level { trace, debug, info, warn, error, off };

/// Parses "trace|debug|info|warn|error|off"; false when the name is unknown.
bool parse_level(std::string_view name, Level& out) noexcept;
std::string_view level_name(Level level) noexcept;

/// One key=value pair of a log line. The value is formatted at construction with fmt, so build
/// fields only for lines that will be written (check Logger::enabled on hot paths).
class Field {
 public:
  template <class T>
  Field(std::string_view key, const T& value) : key_(key), value_(fmt::format("{}", value)) {}
  Field(std::string_view key, std::string value) : key_(key), value_(std::move(value)) {}
  Field(std::string_view key, const char* value) : key_(key), value_(value) {}

  [[nodiscard]] std::string_view key() const noexcept { return key_; }
  [[nodiscard]] const std::string& value() const noexcept { return value_; }

 private:
  std::string_view key_;
  std::string value_;
};

enum class Format {
  automatic,  // journald when $JOURNAL_STREAM names stderr, else plain
  plain,      // "2026-11-22T10:00:00.123Z level=info component=dhcp msg=... k=v"
  journald,   // "<6>level=info component=dhcp msg=... k=v" (priority prefix, no timestamp)
};

struct Options {
  Level level = Level::info;
  Format format = Format::automatic;
  std::ostream* output = nullptr;  // nullptr: stderr. Tests pass a stringstream.
};

/// Sets up the process-wide sink. Call once from main (or a test); safe to call again.
void configure(const Options& options);
void set_level(Level level);
Level level() noexcept;

/// Formats one line in logfmt: values with spaces, quotes or '=' are quoted and escaped.
std::string format_line(std::string_view component, Level level, std::string_view message,
                        std::initializer_list<Field> fields);

/// A component's logger: cheap to copy, thread-safe, writes through the process-wide sink.
class Logger {
 public:
  explicit Logger(std::string component) : component_(std::move(component)) {}

  [[nodiscard]] bool enabled(Level l) const noexcept { return l >= level(); }
  void write(Level l, std::string_view message, std::initializer_list<Field> fields = {}) const;

  void trace(std::string_view m, std::initializer_list<Field> f = {}) const {
    write(Level::trace, m, f);
  }
  void debug(std::string_view m, std::initializer_list<Field> f = {}) const {
    write(Level::debug, m, f);
  }
  void info(std::string_view m, std::initializer_list<Field> f = {}) const {
    write(Level::info, m, f);
  }
  void warn(std::string_view m, std::initializer_list<Field> f = {}) const {
    write(Level::warn, m, f);
  }
  void error(std::string_view m, std::initializer_list<Field> f = {}) const {
    write(Level::error, m, f);
  }

  [[nodiscard]] const std::string& component() const noexcept { return component_; }

 private:
  std::string component_;
};

}  // namespace lab::shared::log
