#include "agent/boot/cmdline.hpp"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <map>
#include <vector>

namespace lab::agent::boot {
namespace {

constexpr std::string_view kPrefix = "lab.";
constexpr std::array<std::string_view, 4> kKnown{"lab.join", "lab.mode", "lab.mac", "lab.server"};
constexpr std::size_t kMaxServer = 512;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// Words as the kernel splits them: whitespace outside double quotes; the quotes themselves
// are dropped (param="a b" → param=a b).
std::vector<std::string> words(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  bool in_word = false;
  for (const char c : text) {
    if (c == '"') {
      quoted = !quoted;
      in_word = true;
      continue;
    }
    if (!quoted && is_space(c)) {
      if (in_word)
        out.push_back(std::move(cur));
      cur.clear();
      in_word = false;
      continue;
    }
    cur += c;
    in_word = true;
  }
  if (in_word)
    out.push_back(std::move(cur));
  return out;
}

// Printable for an error message: a hostile command line must not put control bytes on the
// console or into the flight recorder.
std::string printable(std::string_view s, std::size_t max = 64) {
  std::string out;
  for (const char c : s.substr(0, max)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u >= 0x20 && u < 0x7f) ? c : '?';
  }
  if (s.size() > max)
    out += "...";
  return out;
}

bool valid_server(std::string_view s) {
  if (s.size() > kMaxServer)
    return false;
  std::string_view rest;
  if (s.starts_with("http://"))
    rest = s.substr(7);
  else if (s.starts_with("https://"))
    rest = s.substr(8);
  else
    return false;
  if (rest.empty() || rest.front() == '/')
    return false;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f)
      return false;
  }
  return true;
}

using Params = std::map<std::string, std::string, std::less<>>;

struct Collected {
  Params params;
  std::vector<std::string> unknown;
  std::vector<std::string> duplicate;
};

Collected collect(std::string_view text) {
  Collected c;
  for (auto& w : words(text)) {
    if (!w.starts_with(kPrefix))
      continue;
    const auto eq = w.find('=');
    std::string key = w.substr(0, eq);
    std::string value = eq == std::string::npos ? std::string() : w.substr(eq + 1);
    if (std::find(kKnown.begin(), kKnown.end(), key) == kKnown.end()) {
      if (std::find(c.unknown.begin(), c.unknown.end(), key) == c.unknown.end())
        c.unknown.push_back(std::move(key));
      continue;
    }
    auto [it, inserted] = c.params.emplace(key, value);
    if (!inserted && it->second != value &&
        std::find(c.duplicate.begin(), c.duplicate.end(), key) == c.duplicate.end())
      c.duplicate.push_back(key);
  }
  return c;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty())
      out += ", ";
    out += printable(n);
  }
  return out;
}

}  // namespace

const boost::system::error_category& boot_category() noexcept {
  static const ErrorCategory<BootError> kCategory(
      "lab.boot", [](BootError e) noexcept -> const char* {
        switch (e) {
          case BootError::cmdline_unreadable:
            return "kernel command line unreadable";
          case BootError::unknown_parameter:
            return "unknown lab.* parameter";
          case BootError::missing_join:
            return "no lab.join on the kernel command line";
          case BootError::bad_join:
            return "lab.join is not a join string";
          case BootError::bad_mode:
            return "unknown lab.mode";
          case BootError::bad_mac:
            return "lab.mac is not a MAC address";
          case BootError::bad_server:
            return "lab.server is not an http(s) URL";
          case BootError::duplicate_parameter:
            return "lab.* parameter given twice";
          case BootError::no_mac:
            return "no MAC address to report";
          case BootError::already_joined:
            return "already joined elsewhere";
          case BootError::waiting_failed:
            return "refused while waiting for the operator";
          case BootError::report_failed:
            return "ready report failed";
          case BootError::progress_refused:
            return "progress report refused";
        }
        return "boot error";
      });
  return kCategory;
}

std::string canonical_mac(std::string_view text) {
  std::string hex;
  for (const char c : text) {
    if (c == ':' || c == '-')
      continue;
    if (std::isxdigit(static_cast<unsigned char>(c)) == 0)
      return {};
    hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (hex.size() != 12)
    return {};
  // Separators, when present, must sit between every octet ("5254:00…" is not a MAC).
  if (text.size() != 12) {
    if (text.size() != 17)
      return {};
    for (std::size_t i = 2; i < 17; i += 3) {
      if (text[i] != text[2] || (text[i] != ':' && text[i] != '-'))
        return {};
    }
  }
  std::string out;
  for (std::size_t i = 0; i < 12; i += 2) {
    if (!out.empty())
      out += ':';
    out += hex.substr(i, 2);
  }
  return out;
}

Result<BootParams> parse_cmdline(std::string_view text) {
  if (text.size() > kMaxCmdline) {
    return Error(
        BootError::cmdline_unreadable,
        fmt::format("the command line is {} bytes, more than {}", text.size(), kMaxCmdline));
  }
  Collected c = collect(text);
  if (!c.unknown.empty()) {
    return Error(BootError::unknown_parameter,
                 fmt::format("unknown parameter{} {} (known: lab.join, lab.mode, lab.mac, "
                             "lab.server)",
                             c.unknown.size() > 1 ? "s" : "", join_names(c.unknown)));
  }
  if (!c.duplicate.empty()) {
    return Error(BootError::duplicate_parameter,
                 fmt::format("{} given twice with different values", join_names(c.duplicate)));
  }
  BootParams p;
  if (auto it = c.params.find("lab.mode"); it != c.params.end()) {
    if (it->second != "discovery") {
      return Error(BootError::bad_mode,
                   fmt::format("lab.mode={}: expected discovery", printable(it->second)));
    }
  }
  if (auto it = c.params.find("lab.mac"); it != c.params.end()) {
    p.mac = canonical_mac(it->second);
    if (p.mac.empty()) {
      return Error(BootError::bad_mac,
                   fmt::format("lab.mac={}: expected 52:54:00:12:34:56", printable(it->second)));
    }
  }
  if (auto it = c.params.find("lab.server"); it != c.params.end()) {
    if (!valid_server(it->second)) {
      return Error(BootError::bad_server, fmt::format("lab.server={}: expected http://HOST[:PORT]",
                                                      printable(it->second)));
    }
    p.server = it->second;
    while (p.server.ends_with('/'))
      p.server.pop_back();
  }
  auto it = c.params.find("lab.join");
  if (it == c.params.end() || it->second.empty()) {
    return Error(BootError::missing_join,
                 "no lab.join=<join string> on the kernel command line; the appliance's boot "
                 "script adds it when it can issue a boot token");
  }
  auto js = shared::protocol::parse_join_string(it->second);
  if (!js)
    return Error(BootError::bad_join, "lab.join: " + js.error().detail());
  p.join_text = it->second;
  p.join = std::move(*js);
  return p;
}

ReportTarget report_target(std::string_view text) {
  ReportTarget t;
  if (text.size() > kMaxCmdline)
    return t;
  const Collected c = collect(text);
  if (auto it = c.params.find("lab.mac"); it != c.params.end())
    t.mac = canonical_mac(it->second);
  if (auto it = c.params.find("lab.server"); it != c.params.end() && valid_server(it->second)) {
    t.server = it->second;
    while (t.server.ends_with('/'))
      t.server.pop_back();
  }
  return t;
}

}  // namespace lab::agent::boot
