// lab check set|list|rm: health checks that reach the nodes their selector matches.
#include "bootstrap/lab/api_client.hpp"
#include "bootstrap/lab/commands.hpp"
#include "bootstrap/lab/output.hpp"
#include "shared/config/config.hpp"
#include "shared/protocol/checks.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

namespace lab::bootstrap::commands {
namespace {

namespace json = boost::json;

struct SetOptions {
  std::string name;
  std::string selector;
  std::string command;
  std::string http;
  std::string tcp;
  bool shell = false;
  std::string user = "nobody";
  std::string interval = "30s";
  std::string timeout;  // empty: 5s, or the interval when that is shorter
  int expect_status = 0;
  std::string expect_body;
  int rise = 2;
  int fall = 3;
};

// "df -h '/var/lib'" as argv, with single quotes (literal), double quotes (backslash escapes
// '"' and '\') and backslash outside quotes, as a shell splits words; nothing is expanded.
Result<std::vector<std::string>> split_words(std::string_view text) {
  std::vector<std::string> out;
  std::string word;
  bool in_word = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == '\t') {
      if (in_word)
        out.push_back(std::exchange(word, {}));
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\\' && i + 1 < text.size()) {
      word += text[++i];
    } else if (c == '\'' || c == '"') {
      const auto end = text.find(c, i + 1);
      if (end == std::string_view::npos)
        return Error(LabError::usage, fmt::format("--command: the {} quote at column {} is not "
                                                  "closed",
                                                  c == '\'' ? "single" : "double", i + 1));
      for (std::size_t j = i + 1; j < end; ++j) {
        if (c == '"' && text[j] == '\\' && j + 1 < end &&
            (text[j + 1] == '"' || text[j + 1] == '\\'))
          ++j;
        word += text[j];
      }
      i = end;
    } else {
      word += c;
    }
  }
  if (in_word)
    out.push_back(std::move(word));
  if (out.empty())
    return Error(LabError::usage, "--command: empty");
  return out;
}

// The seconds of a duration option ("30s", "5m"), as the check's wire form counts them.
Result<std::int64_t> seconds_arg(const std::string& text, std::string_view option) {
  LAB_TRY(check_duration_arg(text, option));
  return shared::config::parse_duration(text)->count();
}

std::string target_text(const json::value& c) {
  const std::string kind = text(c, "kind");
  if (kind == "http")
    return text(c, "url");
  if (kind == "tcp")
    return text(c, "address");
  std::string out;
  if (const auto* argv = c.as_object().if_contains("command"); argv && argv->is_array()) {
    for (const auto& a : argv->as_array())
      out += (out.empty() ? "" : " ") + std::string(a.is_string() ? a.as_string() : "");
  }
  return out;
}

}  // namespace

void add_check(CLI::App& app, shared::cli::Action& action) {
  auto flags = std::make_shared<ClientFlags>();
  CLI::App* noun = app.add_subcommand(
      "check", "Health checks: commands, HTTP GETs or TCP connects the matching nodes run");
  noun->require_subcommand(1);
  add_client_flags(*noun, flags);

  auto s = std::make_shared<SetOptions>();
  CLI::App* set = add_verb(
      *noun, "set", "Create or replace a check", action, flags,
      [s](ApiClient& api, const ClientFlags& f) -> Result<void> {
        json::object body{{"selector", s->selector}};
        const int kinds = static_cast<int>(!s->command.empty()) +
                          static_cast<int>(!s->http.empty()) + static_cast<int>(!s->tcp.empty());
        if (kinds != 1)
          return Error(LabError::usage, "name exactly one of --command, --http and --tcp");
        if (!s->command.empty()) {
          json::array argv;
          if (s->shell) {
            argv.emplace_back(s->command);
          } else {
            LAB_TRY_ASSIGN(auto words, split_words(s->command));
            for (auto& w : words)
              argv.emplace_back(std::move(w));
          }
          body["kind"] = "command";
          body["command"] = std::move(argv);
          body["shell"] = s->shell;
          body["user"] = s->user;
        } else if (!s->http.empty()) {
          body["kind"] = "http";
          body["url"] = s->http;
          body["expect_status"] = s->expect_status;
          body["expect_body"] = s->expect_body;
        } else {
          body["kind"] = "tcp";
          body["address"] = s->tcp;
        }
        LAB_TRY_ASSIGN(const std::int64_t interval, seconds_arg(s->interval, "--interval"));
        std::int64_t timeout = std::min<std::int64_t>(5, interval);
        if (!s->timeout.empty()) {
          LAB_TRY_ASSIGN(timeout, seconds_arg(s->timeout, "--timeout"));
        }
        body["interval_seconds"] = interval;
        body["timeout_seconds"] = timeout;
        body["rise"] = s->rise;
        body["fall"] = s->fall;
        // The coordinator's and the nodes' own rule, before anything is sent (exit 2).
        json::object spec = body;
        spec["name"] = s->name;
        if (auto ok = shared::protocol::check_from_json(spec); !ok)
          return Error(LabError::usage, ok.error().detail());
        LAB_TRY_ASSIGN(json::value r,
                       api.call_json("PUT", "/v1/checks/" + url_encode(s->name), body));
        if (f.document())
          print_document(r);
        else
          fmt::print("check {} set\n", s->name);
        return {};
      });
  set->add_option("name", s->name, "check name")
      ->check(name_arg(shared::names::Kind::check))
      ->required();
  set->add_option("-s,--selector", s->selector, "label selector of the nodes that run it")
      ->check(selector_arg())
      ->required();
  set->add_option("--command", s->command,
                  "program and arguments, split into words as a shell would, run without one");
  set->add_option("--http", s->http, "http:// or https:// URL to GET");
  set->add_option("--tcp", s->tcp, "HOST:PORT to connect to");
  set->add_flag("--shell", s->shell, "run --command by /bin/sh -c (pipes, globs)");
  set->add_option("--user", s->user, "unprivileged user the command runs as (default nobody)");
  set->add_option("--interval", s->interval, "pause between runs (default 30s)");
  set->add_option("--timeout", s->timeout,
                  "a run is killed and fails past this (default 5s, or --interval when shorter; "
                  "at most --interval)");
  set->add_option("--expect-status", s->expect_status, "HTTP status to expect (default any 2xx)")
      ->check(CLI::Range(100, 599));
  set->add_option("--expect-body", s->expect_body, "text the HTTP body must contain");
  set->add_option("--rise", s->rise,
                  "passing results in a row that make a failing check pass (default 2)")
      ->check(CLI::Range(1, 10));
  set->add_option("--fall", s->fall,
                  "failing results in a row that make a passing check fail (default 3)")
      ->check(CLI::Range(1, 10));

  add_verb(*noun, "list", "List checks", action, flags,
           [](ApiClient& api, const ClientFlags& f) -> Result<void> {
             LAB_TRY_ASSIGN(json::value r, api.call("GET", "/v1/checks"));
             if (f.document()) {
               print_document(r);
               return {};
             }
             Table t({"NAME", "KIND", "TARGET", "SELECTOR", "INTERVAL", "TIMEOUT", "RISE/FALL"});
             if (r.is_array()) {
               for (const auto& c : r.get_array()) {
                 t.add({text(c, "name"), text(c, "kind"), target_text(c), text(c, "selector"),
                        fmt::format("{}s", integer(c, "interval_seconds")),
                        fmt::format("{}s", integer(c, "timeout_seconds")),
                        fmt::format("{}/{}", integer(c, "rise"), integer(c, "fall"))});
               }
             }
             t.print();
             return {};
           });

  auto del = std::make_shared<std::string>();
  add_verb(*noun, "rm", "Delete a check (its nodes stop running it)", action, flags,
           [del](ApiClient& api, const ClientFlags& f) -> Result<void> {
             LAB_TRY(api.call("DELETE", "/v1/checks/" + url_encode(*del)));
             if (!f.document())
               fmt::print("check {} deleted\n", *del);
             return {};
           })
      ->alias("delete")
      ->add_option("name", *del, "check name")
      ->check(name_arg(shared::names::Kind::check))
      ->required();
}

}  // namespace lab::bootstrap::commands
