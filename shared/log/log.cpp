#include "shared/log/log.hpp"

#include <spdlog/logger.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>

namespace lab::shared::log {
namespace {

std::atomic<Level> g_level{Level::info};

// The sink is replaced by configure(); writers take a copy under the mutex.
struct Sink {
  std::shared_ptr<spdlog::logger> logger;
  bool journal = false;  // prefix lines with "<priority>" and let journald stamp the time
};
std::mutex g_mutex;
Sink g_sink;

spdlog::level::level_enum to_spdlog(Level l) {
  switch (l) {
    case Level::trace:
      return spdlog::level::trace;
    case Level::debug:
      return spdlog::level::debug;
    case Level::info:
      return spdlog::level::info;
    case Level::warn:
      return spdlog::level::warn;
    case Level::error:
      return spdlog::level::err;
    case Level::off:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

// journald parses "<N>" at the start of a stderr line as the syslog priority.
int syslog_priority(Level l) {
  switch (l) {
    case Level::trace:
    case Level::debug:
      return 7;
    case Level::info:
      return 6;
    case Level::warn:
      return 4;
    case Level::error:
      return 3;
    case Level::off:
      return 6;
  }
  return 6;
}

// $JOURNAL_STREAM is "device:inode" of the stream systemd connected; it is ours only if it
// still is stderr (a child may inherit the variable with another stderr).
bool stderr_is_journal() {
  const char* env = std::getenv("JOURNAL_STREAM");  // NOLINT(concurrency-mt-unsafe): no setenv
  if (env == nullptr) {
    return false;
  }
  struct stat st {};
  if (fstat(2, &st) != 0) {
    return false;
  }
  unsigned long long dev = 0;
  unsigned long long ino = 0;
  if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) {  // NOLINT(cert-err34-c)
    return false;
  }
  return dev == st.st_dev && ino == st.st_ino;
}

bool needs_quotes(std::string_view v) {
  if (v.empty()) {
    return true;
  }
  for (char c : v) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) {
      return true;
    }
  }
  return false;
}

void append_value(std::string& out, std::string_view v) {
  if (!needs_quotes(v)) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
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
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

std::shared_ptr<spdlog::logger> make_logger(spdlog::sink_ptr sink, bool journal) {
  auto logger = std::make_shared<spdlog::logger>("lab", std::move(sink));
  logger->set_formatter(std::make_unique<spdlog::pattern_formatter>(
      journal ? "%v" : "%Y-%m-%dT%H:%M:%S.%eZ %v", spdlog::pattern_time_type::utc));
  logger->set_level(spdlog::level::trace);  // filtering happens in Logger::enabled
  return logger;
}

Sink current() {
  std::lock_guard lock(g_mutex);
  if (!g_sink.logger) {  // not configured yet: plain lines on stderr
    g_sink.logger = make_logger(std::make_shared<spdlog::sinks::stderr_sink_mt>(), false);
  }
  return g_sink;
}

}  // namespace

bool parse_level(std::string_view name, Level& out) noexcept {
  static constexpr std::pair<std::string_view, Level> kNames[] = {
      {"trace", Level::trace}, {"debug", Level::debug}, {"info", Level::info},
      {"warn", Level::warn},   {"error", Level::error}, {"off", Level::off}};
  for (const auto& [n, l] : kNames) {
    if (n == name) {
      out = l;
      return true;
    }
  }
  return false;
}

std::string_view level_name(Level level) noexcept {
  switch (level) {
    case Level::trace:
      return "trace";
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warn:
      return "warn";
    case Level::error:
      return "error";
    case Level::off:
      return "off";
  }
  return "info";
}

void configure(const Options& options) {
  spdlog::sink_ptr sink;
  if (options.output != nullptr) {
    sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*options.output, true);
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  }
  const bool journal =
      options.format == Format::journald ||
      (options.format == Format::automatic && options.output == nullptr && stderr_is_journal());
  {
    std::lock_guard lock(g_mutex);
    g_sink = Sink{make_logger(std::move(sink), journal), journal};
  }
  g_level.store(options.level);
}

void set_level(Level level) {
  g_level.store(level);
}
Level level() noexcept {
  return g_level.load(std::memory_order_relaxed);
}

std::string format_line(std::string_view component, Level level, std::string_view message,
                        std::initializer_list<Field> fields) {
  std::string out;
  out.reserve(64 + message.size() + fields.size() * 24);
  out += "level=";
  out += level_name(level);
  out += " component=";
  append_value(out, component);
  out += " msg=";
  append_value(out, message);
  for (const auto& f : fields) {
    out += ' ';
    out += f.key();
    out += '=';
    append_value(out, f.value());
  }
  return out;
}

void Logger::write(Level l, std::string_view message, std::initializer_list<Field> fields) const {
  if (!enabled(l) || l == Level::off) {
    return;
  }
  std::string line = format_line(component_, l, message, fields);
  const Sink sink = current();
  if (sink.journal) {
    line.insert(0, fmt::format("<{}>", syslog_priority(l)));
  }
  sink.logger->log(to_spdlog(l), "{}", line);
}

}  // namespace lab::shared::log
