#include "shared/protocol/checks.hpp"

#include "shared/json/json.hpp"
#include "shared/names/names.hpp"
#include "shared/protocol/protocol.hpp"

#include <boost/json/array.hpp>
#include <fmt/format.h>

#include <algorithm>

namespace lab::shared::protocol {
namespace {

namespace bj = boost::json;

Error bad_field(std::string_view check, std::string_view field, std::string_view why) {
  return {ProtocolError::bad_message, fmt::format("check '{}': {}: {}", check, field, why)};
}

// Optional members keep their defaults when absent; present ones must have the right type.
Result<void> optional_string(const bj::object& o, std::string_view key, std::string& out,
                             std::string_view check) {
  if (const auto* v = o.if_contains(key); v != nullptr && !v->is_null()) {
    if (!v->is_string())
      return bad_field(check, key, "expected a string");
    out = std::string(v->as_string());
  }
  return {};
}

Result<void> optional_int(const bj::object& o, std::string_view key, std::int64_t& out,
                          std::string_view check) {
  if (const auto* v = o.if_contains(key); v != nullptr && !v->is_null()) {
    if (!v->is_int64() && !v->is_uint64())
      return bad_field(check, key, "expected an integer");
    out = v->is_int64() ? v->as_int64() : static_cast<std::int64_t>(v->as_uint64());
  }
  return {};
}

// A POSIX user name as useradd takes it: lower case, digits, '_', '-', at most 32.
bool valid_user(std::string_view u) {
  if (u.empty() || u.size() > 32 || !((u[0] >= 'a' && u[0] <= 'z') || u[0] == '_'))
    return false;
  return std::all_of(u.begin(), u.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

// "host:port" or "[v6]:port", the port 1-65535, the host without spaces.
bool valid_address(std::string_view a) {
  const auto colon = a.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 >= a.size() || a.size() > 262)
    return false;
  const std::string_view port = a.substr(colon + 1);
  if (port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  const int p = std::stoi(std::string(port));
  const std::string_view host = a.substr(0, colon);
  return p >= 1 && p <= 65535 &&
         std::none_of(host.begin(), host.end(), [](char c) { return c <= ' ' || c == '/'; });
}

}  // namespace

bj::object check_to_json(const Check& c) {
  bj::object o;
  o["name"] = c.name;
  o["kind"] = c.kind;
  if (c.kind == "command") {
    bj::array argv;
    for (const auto& a : c.command)
      argv.emplace_back(a);
    o["command"] = std::move(argv);
    o["shell"] = c.shell;
    o["user"] = c.user;
  } else if (c.kind == "http") {
    o["url"] = c.url;
    o["expect_status"] = c.expect_status;
    o["expect_body"] = c.expect_body;
  } else {
    o["address"] = c.address;
  }
  o["interval_seconds"] = c.interval_seconds;
  o["timeout_seconds"] = c.timeout_seconds;
  o["rise"] = c.rise;
  o["fall"] = c.fall;
  return o;
}

Result<Check> check_from_json(const bj::object& o) {
  Check c;
  auto name = json::get_string(o, "name");
  if (!name)
    return Error(ProtocolError::bad_message, "check: " + name.error().detail());
  c.name = *name;
  if (auto ok = names::check(names::Kind::check, c.name); !ok)
    return Error(ProtocolError::bad_message, ok.error().detail());
  const std::string& n = c.name;
  LAB_TRY(optional_string(o, "kind", c.kind, n));
  LAB_TRY(optional_string(o, "user", c.user, n));
  LAB_TRY(optional_string(o, "url", c.url, n));
  LAB_TRY(optional_string(o, "expect_body", c.expect_body, n));
  LAB_TRY(optional_string(o, "address", c.address, n));
  LAB_TRY(optional_int(o, "expect_status", c.expect_status, n));
  LAB_TRY(optional_int(o, "interval_seconds", c.interval_seconds, n));
  LAB_TRY(optional_int(o, "timeout_seconds", c.timeout_seconds, n));
  LAB_TRY(optional_int(o, "rise", c.rise, n));
  LAB_TRY(optional_int(o, "fall", c.fall, n));
  if (const auto* s = o.if_contains("shell"); s != nullptr && !s->is_null()) {
    if (!s->is_bool())
      return bad_field(n, "shell", "expected true or false");
    c.shell = s->as_bool();
  }
  if (c.kind == "command") {
    const auto* argv = o.if_contains("command");
    if (argv == nullptr || !argv->is_array() || argv->as_array().empty())
      return bad_field(n, "command", "expected a non-empty array of strings");
    if (argv->as_array().size() > 64)
      return bad_field(n, "command", "more than 64 arguments");
    for (const auto& a : argv->as_array()) {
      if (!a.is_string() || a.as_string().empty() || a.as_string().size() > 4096 ||
          a.as_string().find('\0') != bj::string::npos)
        return bad_field(n, "command",
                         "every argument is a non-empty string of at most 4096 bytes");
      c.command.emplace_back(a.as_string());
    }
    if (c.shell && c.command.size() != 1)
      return bad_field(n, "command", "with shell, one string (the script for /bin/sh -c)");
    if (c.user == "root" || !valid_user(c.user))
      return bad_field(n, "user",
                       c.user == "root" ? "checks never run as root: name an unprivileged user"
                                        : "'" + c.user + "' is not a user name");
  } else if (c.kind == "http") {
    if (!(c.url.starts_with("http://") || c.url.starts_with("https://")) || c.url.size() > 2048 ||
        c.url.find_first_of(" \r\n") != std::string::npos)
      return bad_field(n, "url", "expected an http:// or https:// URL of at most 2048 bytes");
    if (c.expect_status != 0 && (c.expect_status < 100 || c.expect_status > 599))
      return bad_field(n, "expect_status", "0 (any 2xx) or 100-599");
    if (c.expect_body.size() > 1024)
      return bad_field(n, "expect_body", "at most 1024 bytes");
  } else if (c.kind == "tcp") {
    if (!valid_address(c.address))
      return bad_field(n, "address", "expected host:port with a port 1-65535");
  } else {
    return bad_field(n, "kind", "'" + c.kind + "' is none of command, http, tcp");
  }
  if (c.interval_seconds < 1 || c.interval_seconds > 86400)
    return bad_field(n, "interval_seconds", "between 1 and 86400");
  if (c.timeout_seconds < 1 || c.timeout_seconds > c.interval_seconds)
    return bad_field(n, "timeout_seconds", "at least 1 and at most the interval");
  if (c.rise < 1 || c.rise > 10 || c.fall < 1 || c.fall > 10)
    return bad_field(n, "rise/fall", "between 1 and 10");
  return c;
}

std::string health_of(const std::vector<CheckResult>& results) {
  if (results.empty())
    return "none";
  std::string health = "passing";
  for (const auto& r : results) {
    if (r.status == "failing")
      return "failing";
    if (r.status == "pending")
      health = "pending";
  }
  return health;
}

bj::object check_result_to_json(const CheckResult& r) {
  return bj::object{{"name", r.name},
                    {"status", r.status},
                    {"since", r.since},
                    {"checked_at", r.checked_at},
                    {"duration_ms", r.duration_ms},
                    {"reason", r.reason},
                    {"output", r.output}};
}

Result<CheckResult> check_result_from_json(const bj::object& o) {
  CheckResult r;
  auto name = json::get_string(o, "name");
  auto status = json::get_string(o, "status");
  if (!name || !status)
    return Error(ProtocolError::bad_message,
                 "check result: " + (name ? status.error() : name.error()).detail());
  r.name = *name;
  r.status = *status;
  if (auto ok = names::check(names::Kind::check, r.name); !ok)
    return Error(ProtocolError::bad_message, "check result: " + ok.error().detail());
  if (r.status != "passing" && r.status != "failing" && r.status != "pending")
    return bad_field(r.name, "status", "expected passing, failing or pending");
  LAB_TRY(optional_int(o, "since", r.since, r.name));
  LAB_TRY(optional_int(o, "checked_at", r.checked_at, r.name));
  LAB_TRY(optional_int(o, "duration_ms", r.duration_ms, r.name));
  LAB_TRY(optional_string(o, "reason", r.reason, r.name));
  LAB_TRY(optional_string(o, "output", r.output, r.name));
  if (r.reason.size() > kMaxCheckReason)
    return bad_field(r.name, "reason", "longer than 512 bytes");
  if (r.output.size() > kMaxCheckOutput)
    return bad_field(r.name, "output", "longer than 4096 bytes");
  return r;
}

}  // namespace lab::shared::protocol
