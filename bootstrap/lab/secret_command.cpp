// lab secret set|list|grant|delete. A value comes from stdin or --from-file, never from the command
// line (where `ps` and shell history would show it), and is never printed. At a terminal it is
// typed at a prompt that does not echo it.
#include "bootstrap/lab/commands.hpp"
#include "bootstrap/lab/output.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <termios.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <system_error>

namespace lab::bootstrap::commands {
namespace {

namespace json = boost::json;

// The server refuses bodies past 1 MiB; a larger value is refused here with a clear message.
constexpr std::size_t kMaxSecretBytes = std::size_t{1024} * 1024;

struct SetOptions {
  std::string name;
  std::string file;
  std::string entitlement;
  std::string require;  // empty: unchanged; "any" clears it
};

// The terminal's settings while the prompt has echo off, put back by a signal that ends lab there
// (Ctrl-C would otherwise leave the operator's shell without echo).
termios g_terminal{};  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables): signal handler

extern "C" void restore_terminal_and_reraise(int sig) {
  // All three are async-signal-safe; a failure leaves nothing better to do.
  static_cast<void>(::tcsetattr(STDIN_FILENO, TCSANOW, &g_terminal));
  static_cast<void>(::signal(sig, SIG_DFL));
  static_cast<void>(::raise(sig));
}

// One line typed at the terminal without echo (the Enter still moves to a new line: ECHONL);
// the newline that ends it is not part of the value.
Result<std::string> prompt_value(const std::string& name) {
  if (::tcgetattr(STDIN_FILENO, &g_terminal) != 0)
    return Error(LabError::local, "cannot read the terminal's settings for a hidden prompt");
  termios hidden = g_terminal;
  hidden.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  hidden.c_lflag |= ECHONL;
  // Not SIGTSTP: the shell puts its own settings back on a stopped job, and a resumed prompt
  // must stay hidden.
  constexpr std::array kSignals = {SIGINT, SIGTERM, SIGQUIT, SIGHUP};
  std::array<struct sigaction, kSignals.size()> previous{};
  struct sigaction restore {};
  restore.sa_handler = restore_terminal_and_reraise;
  ::sigemptyset(&restore.sa_mask);
  for (std::size_t i = 0; i < kSignals.size(); ++i)
    ::sigaction(kSignals[i], &restore, &previous[i]);
  ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &hidden);  // before the prompt: nothing typed is echoed
  fmt::print(stderr, "value of secret {} (typing is not shown): ", name);
  static_cast<void>(std::fflush(stderr));
  std::string value;
  const bool got = static_cast<bool>(std::getline(std::cin, value));
  ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_terminal);
  for (std::size_t i = 0; i < kSignals.size(); ++i)
    ::sigaction(kSignals[i], &previous[i], nullptr);
  if (!value.empty() && value.back() == '\r')
    value.pop_back();
  if (!got && value.empty())
    return Error(LabError::usage, "no value typed for secret " + name);
  return value;
}

Result<std::string> read_value(const std::string& name, const std::string& file) {
  std::string value;
  if ((file.empty() || file == "-") && ::isatty(STDIN_FILENO) != 0) {
    LAB_TRY_ASSIGN(value, prompt_value(name));
  } else if (file.empty() || file == "-") {
    std::array<char, 4096> buf{};
    std::size_t n = 0;
    while ((n = std::fread(buf.data(), 1, buf.size(), stdin)) > 0) {
      value.append(buf.data(), n);
      if (value.size() > kMaxSecretBytes)
        break;
    }
  } else {
    std::ifstream in(file, std::ios::binary);
    if (!in)
      return Error(LabError::input, "cannot read --from-file " + file);
    value.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (value.empty())
    return Error(LabError::usage,
                 "the secret's value is empty (give it on stdin or with --from-file)");
  if (value.size() > kMaxSecretBytes)
    return Error(LabError::usage, "the secret's value is larger than 1 MiB");
  return value;
}

}  // namespace

void add_secret(CLI::App& app, shared::cli::Action& action) {
  auto flags = std::make_shared<ClientFlags>();
  CLI::App* noun = app.add_subcommand("secret", "Secrets: values delivered only to entitled nodes");
  noun->require_subcommand(1);
  add_client_flags(*noun, flags);

  auto s = std::make_shared<SetOptions>();
  CLI::App* set = add_verb(
      *noun, "set", "Set a secret's value (typed at a hidden prompt, from stdin, or --from-file)",
      action, flags, [s](ApiClient& api, const ClientFlags& f) -> Result<void> {
        LAB_TRY_ASSIGN(std::string value, read_value(s->name, s->file));
        std::string path = "/v1/secrets/" + url_encode(s->name);
        std::string query;
        if (!s->entitlement.empty())
          query += "&entitlement=" + url_encode(s->entitlement);
        if (!s->require.empty())
          query += "&require=" + url_encode(s->require == "any" ? "" : s->require);
        if (!query.empty())
          path += "?" + query.substr(1);
        LAB_TRY_ASSIGN(json::value r, api.call("PUT", path, value, "application/octet-stream"));
        if (f.document())
          print_document(r);
        else if (const std::string require = text(r, "require"); !require.empty())
          fmt::print("secret {} set (version {}, require {})\n", s->name, text(r, "version"),
                     require);
        else
          fmt::print("secret {} set (version {})\n", s->name, text(r, "version"));
        return {};
      });
  set->add_option("name", s->name, "secret name")
      ->check(name_arg(shared::names::Kind::secret))
      ->required();
  set->add_option("-f,--from-file", s->file, "read the value from this file ('-' = stdin)")
      ->check([](const std::string& path) {
        // Checked before connecting: a typo is the operator's to fix, not the appliance's.
        if (path == "-" || ::access(path.c_str(), R_OK) == 0)
          return std::string();
        return "cannot read '" + path + "': " + std::generic_category().message(errno);
      });
  set->add_option("-e,--entitlement", s->entitlement,
                  "selector of the nodes that receive it (default: unchanged; nobody when new)")
      ->check(selector_arg());
  set->add_option("--require", s->require,
                  "key protection an entitled node must report: tpm (tpm or tpm+pcr), tpm+pcr, "
                  "or any (default: unchanged; any when new)")
      ->check(CLI::IsMember({"tpm", "tpm+pcr", "any"}));
  set->footer(
      "At a terminal the value is typed at a prompt that does not show it, and the Enter that "
      "ends it is not stored. From a pipe or --from-file it is stored byte for byte (a trailing "
      "newline too).\n"
      "With --require the coordinator seals the secret only into the bundles of entitled nodes "
      "whose agent reports that key protection (the KEY column of 'lab node list'); a node that "
      "reports none gets it only with 'any'.");

  add_verb(*noun, "list", "List secrets (never their values)", action, flags,
           [](ApiClient& api, const ClientFlags& f) -> Result<void> {
             LAB_TRY_ASSIGN(json::value r, api.call("GET", "/v1/secrets"));
             if (f.document()) {
               print_document(r);
               return {};
             }
             Table t({"NAME", "ENTITLEMENT", "REQUIRE", "VERSION", "SIZE", "UPDATED"});
             if (r.is_array()) {
               for (const auto& sec : r.get_array()) {
                 const std::string require = text(sec, "require");
                 t.add({text(sec, "name"), text(sec, "entitlement"),
                        require.empty() ? "any" : require, text(sec, "version"), text(sec, "size"),
                        format_time(integer(sec, "updated_at"))});
               }
             }
             t.print();
             return {};
           });

  auto grant_name = std::make_shared<std::string>();
  auto grant_sel = std::make_shared<std::string>();
  CLI::App* grant = add_verb(
      *noun, "grant", "Set which nodes a secret is delivered to", action, flags,
      [grant_name, grant_sel](ApiClient& api, const ClientFlags& f) -> Result<void> {
        LAB_TRY_ASSIGN(json::value r,
                       api.call_json("POST", "/v1/secrets/" + url_encode(*grant_name) + "/grant",
                                     json::object{{"entitlement", *grant_sel}}));
        if (f.document())
          print_document(r);
        else
          fmt::print("secret {} entitled to '{}'\n", *grant_name, *grant_sel);
        return {};
      });
  grant->add_option("name", *grant_name, "secret name")
      ->check(name_arg(shared::names::Kind::secret))
      ->required();
  grant->add_option("selector", *grant_sel, "selector of the entitled nodes")
      ->check(selector_arg())
      ->required();

  auto del = std::make_shared<std::string>();
  add_verb(*noun, "delete", "Delete a secret", action, flags,
           [del](ApiClient& api, const ClientFlags& f) -> Result<void> {
             LAB_TRY(api.call("DELETE", "/v1/secrets/" + url_encode(*del)));
             if (!f.document())
               fmt::print("secret {} deleted\n", *del);
             return {};
           })
      ->add_option("name", *del, "secret name")
      ->check(name_arg(shared::names::Kind::secret))
      ->required();
}

}  // namespace lab::bootstrap::commands
