#include "agent/configrun/summary.hpp"

#include <boost/system/error_code.hpp>
#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <utility>
#include <vector>

namespace lab::agent::configrun {

const boost::system::error_category& configrun_category() noexcept {
  static const ErrorCategory<ConfigRunError> kCategory(
      "lab.configrun", [](ConfigRunError e) noexcept -> const char* {
        switch (e) {
          case ConfigRunError::too_large:
            return "run summary too large";
          case ConfigRunError::parser_init:
            return "cannot initialise the YAML parser";
          case ConfigRunError::syntax:
            return "run summary is not valid YAML";
          case ConfigRunError::alias:
            return "YAML aliases are not supported";
          case ConfigRunError::too_deep:
            return "run summary nested too deep";
          case ConfigRunError::too_many_scalars:
            return "run summary has too many values";
          case ConfigRunError::several_documents:
            return "run summary has more than one document";
          case ConfigRunError::complex_key:
            return "run summary has a non-scalar key";
          case ConfigRunError::empty:
            return "run summary is empty";
          case ConfigRunError::not_a_mapping:
            return "run summary is not a mapping";
          case ConfigRunError::duplicate_key:
            return "run summary has a duplicate key";
          case ConfigRunError::wrong_type:
            return "run summary value has the wrong type";
          case ConfigRunError::out_of_range:
            return "run summary number out of range";
          case ConfigRunError::too_long:
            return "run summary value too long";
          case ConfigRunError::missing_last_run:
            return "run summary has no time.last_run";
          case ConfigRunError::file_open:
            return "cannot open the run summary";
          case ConfigRunError::file_stat:
            return "cannot stat the run summary";
          case ConfigRunError::not_a_regular_file:
            return "run summary is not a regular file";
          case ConfigRunError::file_read:
            return "cannot read the run summary";
        }
        return "run summary error";
      });
  return kCategory;
}

namespace {

// The document as a small tree. Building it first (bounded by kMaxScalars and kMaxDepth) keeps
// the event loop free of what the summary means, and lets a lookup see duplicate keys.
struct Node {
  enum class Kind { scalar, mapping, sequence };
  Kind kind = Kind::scalar;
  std::string key;       // the key this node is the value of, inside a mapping
  std::string text;      // a scalar's text
  bool plain = false;    // unquoted: only a plain scalar can be a number or null
  std::size_t line = 0;  // 1-based, for messages
  std::vector<Node> children;
};

std::string position(const yaml_mark_t& mark) {
  return fmt::format("line {}, column {}", mark.line + 1, mark.column + 1);
}

class Parser {
 public:
  explicit Parser(std::string_view yaml) {
    ok_ = yaml_parser_initialize(&parser_) == 1;
    if (ok_) {
      yaml_parser_set_input_string(&parser_, reinterpret_cast<const unsigned char*>(yaml.data()),
                                   yaml.size());
    }
  }
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;
  ~Parser() {
    if (ok_)
      yaml_parser_delete(&parser_);
  }

  [[nodiscard]] bool ok() const noexcept { return ok_; }
  bool next(yaml_event_t& event) { return yaml_parser_parse(&parser_, &event) == 1; }

  // What libyaml refused, where. Reader errors (bad encoding) carry a byte offset rather than a
  // mark, so the line and column are counted from the input.
  [[nodiscard]] std::string problem(std::string_view yaml) const {
    const char* what = parser_.problem != nullptr ? parser_.problem : "unknown error";
    if (parser_.error == YAML_MEMORY_ERROR)
      return "out of memory";
    if (parser_.error == YAML_READER_ERROR) {
      const std::size_t offset = std::min(parser_.problem_offset, yaml.size());
      const std::string_view before = yaml.substr(0, offset);
      const std::size_t line =
          1 + static_cast<std::size_t>(std::count(before.begin(), before.end(), '\n'));
      const std::size_t nl = before.rfind('\n');
      const std::size_t column = nl == std::string_view::npos ? offset + 1 : offset - nl;
      if (parser_.problem_value >= 0)
        return fmt::format("line {}, column {}: {} (byte {:#04x})", line, column, what,
                           parser_.problem_value);
      return fmt::format("line {}, column {}: {}", line, column, what);
    }
    std::string out = position(parser_.problem_mark) + ": " + what;
    if (parser_.context != nullptr)
      out += fmt::format(" ({} at {})", parser_.context, position(parser_.context_mark));
    return out;
  }

 private:
  yaml_parser_t parser_{};
  bool ok_ = false;
};

// Owns one event until the next is parsed.
class Event {
 public:
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() { yaml_event_delete(&event_); }
  yaml_event_t& get() noexcept { return event_; }

 private:
  yaml_event_t event_{};
};

std::string_view scalar_text(const yaml_event_t& e) {
  return {reinterpret_cast<const char*>(e.data.scalar.value), e.data.scalar.length};
}

class TreeBuilder {
 public:
  // Places a node where the event stream says it belongs: the root, a mapping's key (kept as
  // text until its value comes), a mapping's value, or a sequence item. Returns the node when
  // it was stored as a value, so a collection can be opened on it.
  Result<Node*> place(Node node, const yaml_mark_t& mark) {
    if (open_.empty()) {
      root_ = std::move(node);
      has_root_ = true;
      return &root_;
    }
    Frame& f = open_.back();
    if (f.node->kind == Node::Kind::mapping && !f.has_key) {
      if (node.kind != Node::Kind::scalar)
        return Error(ConfigRunError::complex_key,
                     position(mark) + ": a mapping key must be a scalar, not a collection");
      f.key = std::move(node.text);
      f.has_key = true;
      return nullptr;
    }
    if (f.node->kind == Node::Kind::mapping) {
      node.key = std::move(f.key);
      f.has_key = false;
    }
    f.node->children.push_back(std::move(node));
    return &f.node->children.back();
  }

  Result<void> open(Node::Kind kind, const yaml_mark_t& mark) {
    if (open_.size() >= kMaxDepth)
      return Error(ConfigRunError::too_deep, fmt::format("{}: collections nested more than {} deep",
                                                         position(mark), kMaxDepth));
    Node node;
    node.kind = kind;
    node.line = mark.line + 1;
    LAB_TRY_ASSIGN(Node * placed, place(std::move(node), mark));
    // A collection as a key was refused by place(); a value always comes back.
    open_.push_back(Frame{placed, false, {}});
    return {};
  }

  void close() {
    if (!open_.empty())
      open_.pop_back();
  }

  Result<void> scalar(const yaml_event_t& e) {
    if (++scalars_ > kMaxScalars)
      return Error(ConfigRunError::too_many_scalars,
                   fmt::format("{}: more than {} values", position(e.start_mark), kMaxScalars));
    Node node;
    node.text = std::string(scalar_text(e));
    node.plain = e.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    node.line = e.start_mark.line + 1;
    LAB_TRY(place(std::move(node), e.start_mark));
    return {};
  }

  [[nodiscard]] bool has_root() const noexcept { return has_root_; }
  Node take_root() { return std::move(root_); }

 private:
  struct Frame {
    Node* node = nullptr;  // stable: only the innermost open collection gains children
    bool has_key = false;
    std::string key;
  };
  Node root_;
  bool has_root_ = false;
  std::vector<Frame> open_;
  std::size_t scalars_ = 0;
};

Result<Node> parse_tree(std::string_view yaml) {
  Parser parser(yaml);
  if (!parser.ok())
    return Error(ConfigRunError::parser_init, "cannot initialise libyaml's parser");
  TreeBuilder tree;
  int documents = 0;
  for (;;) {
    Event event;
    if (!parser.next(event.get()))
      return Error(ConfigRunError::syntax, "YAML syntax error at " + parser.problem(yaml));
    const yaml_event_t& e = event.get();
    switch (e.type) {
      case YAML_NO_EVENT:
      case YAML_STREAM_START_EVENT:
      case YAML_DOCUMENT_END_EVENT:
        break;
      case YAML_STREAM_END_EVENT:
        if (!tree.has_root())
          return Error(ConfigRunError::empty, "the file holds no YAML document");
        return tree.take_root();
      case YAML_DOCUMENT_START_EVENT:
        if (++documents > 1)
          return Error(ConfigRunError::several_documents,
                       position(e.start_mark) + ": a second YAML document; a summary has one");
        break;
      case YAML_ALIAS_EVENT:
        // Refused rather than expanded: an alias can repeat a large node many times over
        // ("billion laughs"), and an agent never writes one.
        return Error(
            ConfigRunError::alias,
            fmt::format("{}: alias *{} refused (aliases are not supported)", position(e.start_mark),
                        reinterpret_cast<const char*>(e.data.alias.anchor)));
      case YAML_SCALAR_EVENT:
        LAB_TRY(tree.scalar(e));
        break;
      case YAML_SEQUENCE_START_EVENT:
        LAB_TRY(tree.open(Node::Kind::sequence, e.start_mark));
        break;
      case YAML_MAPPING_START_EVENT:
        LAB_TRY(tree.open(Node::Kind::mapping, e.start_mark));
        break;
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT:
        tree.close();
        break;
    }
  }
}

// YAML 1.1's nulls, as libyaml-based loaders and Psych resolve them; Psych writes a nil
// configuration version as an empty value.
bool is_null(const Node& n) {
  return n.kind == Node::Kind::scalar && n.plain &&
         (n.text.empty() || n.text == "~" || n.text == "null" || n.text == "Null" ||
          n.text == "NULL");
}

std::string describe(const Node& n) {
  switch (n.kind) {
    case Node::Kind::mapping:
      return "a mapping";
    case Node::Kind::sequence:
      return "a sequence";
    case Node::Kind::scalar:
      break;
  }
  constexpr std::size_t kShown = 40;
  if (n.text.size() > kShown)
    return "'" + n.text.substr(0, kShown) + "...'";
  return "'" + n.text + "'";
}

std::string join(std::string_view section, std::string_view key) {
  return std::string(section) + "." + std::string(key);
}

// The value of `key` in `map`, or nullptr when absent or null. Two of the same key would make
// the value depend on which one a reader keeps, so that is an error.
Result<const Node*> member(const Node& map, std::string_view key, const std::string& path) {
  const Node* found = nullptr;
  for (const Node& child : map.children) {
    if (child.key != key)
      continue;
    if (found != nullptr)
      return Error(ConfigRunError::duplicate_key, fmt::format("{}: duplicate key (lines {} and {})",
                                                              path, found->line, child.line));
    found = &child;
  }
  if (found == nullptr || is_null(*found))
    return nullptr;
  return found;
}

Result<const Node*> section(const Node& root, std::string_view name) {
  const std::string path(name);
  LAB_TRY_ASSIGN(const Node* s, member(root, name, path));
  if (s != nullptr && s->kind != Node::Kind::mapping)
    return Error(
        ConfigRunError::wrong_type,
        fmt::format("{}: expected a mapping, found {} (line {})", path, describe(*s), s->line));
  return s;
}

// A decimal integer with an optional sign, as Psych writes one; invalid_argument unless the
// whole text is one.
std::errc parse_int(std::string_view text, std::int64_t& v) {
  if (!text.empty() && text.front() == '+')
    text.remove_prefix(1);
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc() && ptr != text.data() + text.size())
    return std::errc::invalid_argument;
  return ec;
}

Error wrong_type(const std::string& path, std::string_view expected, const Node& n) {
  return {ConfigRunError::wrong_type,
          fmt::format("{}: expected {}, found {} (line {})", path, expected, describe(n), n.line)};
}

// A whole number at section.key; nullopt when the section or the key is absent or null.
Result<std::optional<std::int64_t>> integer(const Node* sec, std::string_view section_name,
                                            std::string_view key) {
  if (sec == nullptr)
    return std::nullopt;
  const std::string path = join(section_name, key);
  LAB_TRY_ASSIGN(const Node* n, member(*sec, key, path));
  if (n == nullptr)
    return std::nullopt;
  if (n->kind != Node::Kind::scalar || !n->plain)
    return wrong_type(path, "a number", *n);
  std::int64_t v = 0;
  const std::errc ec = parse_int(n->text, v);
  if (ec == std::errc::result_out_of_range)
    return Error(ConfigRunError::out_of_range,
                 fmt::format("{}: {} is out of range (line {})", path, n->text, n->line));
  if (ec != std::errc())
    return wrong_type(path, "a whole number", *n);
  return v;
}

Result<double> real(const Node* sec, std::string_view section_name, std::string_view key) {
  if (sec == nullptr)
    return 0.0;
  const std::string path = join(section_name, key);
  LAB_TRY_ASSIGN(const Node* n, member(*sec, key, path));
  if (n == nullptr)
    return 0.0;
  if (n->kind != Node::Kind::scalar || !n->plain)
    return wrong_type(path, "a number", *n);
  std::string_view text = n->text;
  if (!text.empty() && text.front() == '+')
    text.remove_prefix(1);
  double v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc::result_out_of_range)
    return Error(ConfigRunError::out_of_range,
                 fmt::format("{}: {} is out of range (line {})", path, n->text, n->line));
  // from_chars reads "inf" and "nan", which YAML reads as strings.
  if (ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(v))
    return wrong_type(path, "a number", *n);
  return v;
}

// A scalar's text, any style; nullptr when absent or null.
Result<const Node*> scalar(const Node* sec, std::string_view section_name, std::string_view key,
                           std::string_view expected) {
  if (sec == nullptr)
    return nullptr;
  const std::string path = join(section_name, key);
  LAB_TRY_ASSIGN(const Node* n, member(*sec, key, path));
  if (n != nullptr && n->kind != Node::Kind::scalar)
    return wrong_type(path, expected, *n);
  return n;
}

}  // namespace

Result<Summary> parse_summary(std::string_view yaml) {
  if (yaml.size() > kMaxBytes)
    return Error(
        ConfigRunError::too_large,
        fmt::format("{} bytes, more than the {} a run summary may have", yaml.size(), kMaxBytes));
  LAB_TRY_ASSIGN(const Node root, parse_tree(yaml));
  if (root.kind != Node::Kind::mapping)
    return Error(ConfigRunError::not_a_mapping,
                 fmt::format("the document is {}, not a mapping of sections (line {})",
                             is_null(root) ? "empty" : describe(root), root.line));

  Summary s;
  LAB_TRY_ASSIGN(const Node* version, section(root, "version"));
  // A configuration version is whatever the server's config_version script prints; the default
  // is the compile time in unix seconds. Only that numeric form is reported.
  LAB_TRY_ASSIGN(const Node* config, scalar(version, "version", "config", "a scalar"));
  if (std::int64_t v = 0; config != nullptr && parse_int(config->text, v) == std::errc())
    s.config_version = v;
  LAB_TRY_ASSIGN(const Node* agent, scalar(version, "version", "puppet", "a string"));
  if (agent != nullptr) {
    if (agent->text.size() > kMaxVersionLength)
      return Error(ConfigRunError::too_long,
                   fmt::format("version.puppet: {} characters, more than {} (line {})",
                               agent->text.size(), kMaxVersionLength, agent->line));
    s.agent_version = agent->text;
  }

  LAB_TRY_ASSIGN(const Node* resources, section(root, "resources"));
  LAB_TRY_ASSIGN(const auto failed, integer(resources, "resources", "failed"));
  LAB_TRY_ASSIGN(const auto failed_to_restart,
                 integer(resources, "resources", "failed_to_restart"));
  LAB_TRY_ASSIGN(const auto total, integer(resources, "resources", "total"));
  s.resources = total.value_or(0);

  LAB_TRY_ASSIGN(const Node* time, section(root, "time"));
  LAB_TRY_ASSIGN(const auto last_run, integer(time, "time", "last_run"));
  if (!last_run)
    return Error(ConfigRunError::missing_last_run,
                 "time.last_run is missing: not an agent's last_run_summary.yaml");
  s.last_run = *last_run;
  LAB_TRY_ASSIGN(s.duration_seconds, real(time, "time", "total"));

  LAB_TRY_ASSIGN(const Node* changes, section(root, "changes"));
  LAB_TRY_ASSIGN(const auto changed, integer(changes, "changes", "total"));
  s.changes = changed.value_or(0);

  LAB_TRY_ASSIGN(const Node* events, section(root, "events"));
  LAB_TRY_ASSIGN(const auto failure_events, integer(events, "events", "failure"));

  // Counts a file can set to anything: the sum is checked rather than left to overflow.
  for (const std::int64_t part :
       {failed.value_or(0), failed_to_restart.value_or(0), failure_events.value_or(0)}) {
    if (__builtin_add_overflow(s.failures, part, &s.failures))
      return Error(ConfigRunError::out_of_range,
                   "resources.failed + resources.failed_to_restart + events.failure is out of "
                   "range");
  }
  return s;
}

namespace {

class Fd {
 public:
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0)
      static_cast<void>(::close(fd_));
  }
  [[nodiscard]] int get() const noexcept { return fd_; }

 private:
  int fd_;
};

std::string errno_text(int err) {
  return boost::system::error_code(err, boost::system::generic_category()).message();
}

}  // namespace

Result<std::optional<Summary>> read_summary(const std::filesystem::path& path) {
  // O_NONBLOCK: opening a FIFO put in the file's place must not wait for a writer.
  const Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (fd.get() < 0) {
    const int err = errno;
    if (err == ENOENT)
      return std::optional<Summary>();
    return Error(ConfigRunError::file_open,
                 fmt::format("open {}: {}", path.string(), errno_text(err)));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    const int err = errno;
    return Error(ConfigRunError::file_stat,
                 fmt::format("stat {}: {}", path.string(), errno_text(err)));
  }
  if (!S_ISREG(st.st_mode))
    return Error(ConfigRunError::not_a_regular_file,
                 fmt::format("{}: {}", path.string(),
                             S_ISDIR(st.st_mode) ? "is a directory" : "is not a regular file"));
  if (static_cast<std::uint64_t>(st.st_size) > kMaxBytes)
    return Error(ConfigRunError::too_large,
                 fmt::format("{}: {} bytes, more than the {} a run summary may have", path.string(),
                             st.st_size, kMaxBytes));

  // One byte past the limit, so a file that grew after fstat is still caught.
  std::string text(kMaxBytes + 1, '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      const int err = errno;
      return Error(ConfigRunError::file_read,
                   fmt::format("read {}: {}", path.string(), errno_text(err)));
    }
    if (n == 0)
      break;
    got += static_cast<std::size_t>(n);
  }
  text.resize(got);

  auto parsed = parse_summary(text);
  if (!parsed) {
    Error e = std::move(parsed).error();
    e.context(path.string());
    return e;
  }
  return std::optional<Summary>(std::move(*parsed));
}

boost::json::object to_json(const Summary& s) {
  boost::json::object o;
  o["last_run"] = s.last_run;
  o["config_version"] = s.config_version;
  o["agent_version"] = s.agent_version;
  o["failures"] = s.failures;
  o["changes"] = s.changes;
  o["resources"] = s.resources;
  o["duration_seconds"] = s.duration_seconds;
  return o;
}

}  // namespace lab::agent::configrun
