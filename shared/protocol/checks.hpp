#pragma once
// Health checks on the wire: the definition an operator sets on the coordinator and every
// matching node receives in its bundle, and the result a node reports back. Both are checked
// on receipt with bounds, so neither side can be made to hold or run something unbounded.

#include "shared/errors/error.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace lab::shared::protocol {

/// What a node runs, how often, and how many results in a row change its state.
struct Check {
  std::string name;
  std::string kind = "command";      // "command", "http", "tcp"
  std::vector<std::string> command;  // command: program and arguments (one string with shell)
  bool shell = false;                // command: run by /bin/sh -c
  std::string user = "nobody";       // command: the unprivileged user it runs as, never root
  std::string url;                   // http: http:// or https://
  std::int64_t expect_status = 0;    // http: 0 any 2xx, else exactly this
  std::string expect_body;           // http: a substring the body must contain
  std::string address;               // tcp: "host:port"
  std::int64_t interval_seconds = 30;
  std::int64_t timeout_seconds = 5;
  std::int64_t rise = 2;  // passing results in a row that make a failing check pass
  std::int64_t fall = 3;  // failing results in a row that make a passing check fail

  friend bool operator==(const Check&, const Check&) = default;
};

/// The check as JSON (the bundle's and the API's form; the API adds "selector").
boost::json::object check_to_json(const Check& c);
/// Parses and bounds a check: a name by the shared rule, a known kind with its target, a
/// user that is not root, 1 s <= interval <= 1 day, 1 s <= timeout <= interval, 1 <= rise,
/// fall <= 10. bad_message naming the field otherwise.
Result<Check> check_from_json(const boost::json::object& o);

/// A check's state on a node.
struct CheckResult {
  std::string name;
  std::string status;           // "passing", "failing", "pending" (not enough results yet)
  std::int64_t since = 0;       // unix seconds the status began
  std::int64_t checked_at = 0;  // unix seconds of the last run
  std::int64_t duration_ms = 0;
  std::string reason;  // the last run's one line: "exit status 2", "HTTP 503"
  std::string output;  // the last run's output, at most kMaxCheckOutput bytes

  friend bool operator==(const CheckResult&, const CheckResult&) = default;
};
inline constexpr std::size_t kMaxCheckOutput = 4096;
inline constexpr std::size_t kMaxCheckReason = 512;
/// Checks a node may report at once (and a bundle may carry).
inline constexpr std::size_t kMaxChecks = 64;

boost::json::object check_result_to_json(const CheckResult& r);

/// A node's health in one word: "none" (no checks), "failing" (any), "pending" (any, none
/// failing), else "passing".
std::string health_of(const std::vector<CheckResult>& results);
/// Parses and bounds a result (status known, output and reason within their limits).
Result<CheckResult> check_result_from_json(const boost::json::object& o);

}  // namespace lab::shared::protocol
