// labd: the node agent. Parses the command line and hands off to agent/daemon (and agent/boot
// for `labd boot`).
#include "agent/boot/boot.hpp"
#include "agent/daemon/local.hpp"
#include "agent/daemon/node.hpp"
#include "agent/daemon/run.hpp"
#include "agent/daemon/settings.hpp"
#include "shared/cli/cli.hpp"
#include "shared/cli/docs.hpp"
#include "shared/config/template.hpp"
#include "shared/json/json.hpp"
#include "shared/text/time.hpp"

#include <CLI/CLI.hpp>
#include <boost/json/object.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace {

namespace daemon = lab::agent::daemon;
namespace cli = lab::shared::cli;
constexpr const char* kProgram = "labd";
constexpr const char* kConfigHeader =
    "/etc/lab/labd.toml: the lab node agent's configuration (labd --help lists its commands).\n"
    "Precedence: --set and other flags, then LABD_* variables, then this file, then defaults.";

struct Global {
  std::string config;
  std::string data_dir;
  std::string socket;
  std::vector<std::string> sets;
};

// A configuration that does not load is a usage error (2), as it is for `lab serve`.
std::optional<daemon::Settings> settings(const Global& g) {
  daemon::SettingSources src;
  if (!g.config.empty())
    src.config_file = g.config;
  src.environment = daemon::labd_environment();
  for (const auto& set : g.sets) {
    const auto eq = set.find('=');
    if (eq == std::string::npos || eq == 0) {
      cli::print_error(kProgram, "--set '" + set + "': expected KEY=VALUE",
                       "like --set key_protection=file");
      return std::nullopt;
    }
    src.flags.push_back({set.substr(0, eq), set.substr(eq + 1), "--set " + set.substr(0, eq)});
  }
  if (!g.data_dir.empty())
    src.flags.push_back({"data_dir", g.data_dir, "--data-dir"});
  if (!g.socket.empty())
    src.flags.push_back({"socket", g.socket, "--socket"});
  auto s = daemon::load_settings(src);
  if (!s) {
    cli::print_error(kProgram, s.error(), "see /etc/lab/labd.toml, LABD_* variables and --set");
    return std::nullopt;
  }
  return *s;
}

// What failed, then why: "invalid token: the coordinator refused the token". The internal
// codes a detail collected on its way up are left to --debug.
int fail(const lab::Error& e) {
  std::string text = cli::error_text(e);
  if (const std::string what = e.code().message();
      !e.detail().empty() && text.find(what) == std::string::npos) {
    text = what + ": " + text;
  }
  cli::print_error(kProgram, text, daemon::hint(e));
  return cli::kExitFailure;
}

// The first line of `in`, without surrounding blanks; nullopt when it is longer than any join
// string could be.
std::optional<std::string> first_line(std::FILE* in) {
  std::string line;
  std::array<char, 4096> buf{};
  if (std::fgets(buf.data(), buf.size(), in) != nullptr) {
    line = buf.data();
    if (!line.ends_with('\n') && std::feof(in) == 0)
      return std::nullopt;
  }
  const auto first = line.find_first_not_of(" \t\r\n");
  if (first == std::string::npos)
    return std::string();
  return line.substr(first, line.find_last_not_of(" \t\r\n") - first + 1);
}

// The join string is a one-time credential, and a command line is readable by every local user
// (ps, /proc/PID/cmdline): "-" reads it from stdin, --join-file from a file instead.
std::optional<std::string> join_string(const std::string& arg, const std::string& file) {
  const std::string hint = "pipe it in ('labd join - < FILE') or pass --join-file FILE";
  if (arg.empty() && file.empty()) {
    cli::print_error(kProgram, "no join string", hint);
    return std::nullopt;
  }
  if (arg != "-" && file.empty())
    return arg;
  std::FILE* in = stdin;
  const std::string from = file.empty() ? "stdin" : file;
  if (!file.empty()) {
    in = std::fopen(file.c_str(), "re");
    if (in == nullptr) {
      cli::print_error(kProgram,
                       "cannot read --join-file " + file + ": " +
                           std::error_code(errno, std::generic_category()).message(),
                       "the file must exist and be readable by this user");
      return std::nullopt;
    }
  }
  auto line = first_line(in);
  if (in != stdin)
    std::fclose(in);  // NOLINT(cert-err33-c): read-only
  if (!line) {
    cli::print_error(kProgram, "the first line of " + from + " is too long for a join string",
                     "it holds one word starting with 'lab1:'");
    return std::nullopt;
  }
  if (line->empty()) {
    cli::print_error(kProgram, "no join string on " + from, hint);
    return std::nullopt;
  }
  return line;
}

int do_join(const Global& g, const std::string& arg, const std::string& file, bool rejoin,
            int timeout, const std::string& hostname) {
  auto js = join_string(arg, file);
  if (!js)
    return cli::kExitUsage;
  auto s = settings(g);
  if (!s)
    return cli::kExitUsage;
  daemon::JoinOptions o;
  o.join_string = *js;
  o.rejoin = rejoin;
  o.timeout = std::chrono::seconds(timeout);
  o.hostname = hostname;
  auto r = daemon::join(*s, o);
  if (!r)
    return fail(r.error());
  const daemon::NodeRecord& n = r->record;
  fmt::print("{} as {} ({}) at {}; key protection: {}\n", rejoin ? "rejoined" : "joined", n.name,
             n.node_id, n.coordinator_url, n.key_protection == "file" ? "file (degraded)" : "tpm");
  if (!rejoin || r->previous_node_id.empty())
    return cli::kExitOk;
  // A running agent still holds the old identity in memory, and the coordinator now refuses it.
  if (daemon::daemon_answers(*s))
    fmt::print("labd is running with the old identity: restart it ('systemctl restart labd')\n");
  // Whether the coordinator kept the node decides what the operator must redo (labels, groups,
  // secret entitlements by node): say it, so nobody finds out later.
  if (r->kept_node()) {
    fmt::print(
        "same node, new keys: {} keeps its id, labels and entitlements; its old "
        "certificates are revoked\n",
        n.name);
    return cli::kExitOk;
  }
  std::string why;
  switch (r->proof) {
    case daemon::Joined::Proof::sent:
      why =
          "the coordinator did not take this machine's key as proof (the node is revoked, or "
          "its certificate expired longer ago than the renewal grace)";
      break;
    case daemon::Joined::Proof::other_coordinator:
      why = "the join string is for another coordinator than the one that enrolled it";
      break;
    default:
      why = "its identity no longer opens on this machine, so nothing proved this is that node";
      break;
  }
  fmt::print(
      "a new node, not {} ({}): {}; the old node's labels and entitlements do not carry "
      "over\n",
      r->previous_name, r->previous_node_id, why);
  // The coordinator never gives a name twice: the revoked node keeps it until it is deleted.
  if (n.name != r->previous_name && n.name.starts_with(r->previous_name + "-")) {
    fmt::print(
        "named {} because the revoked node still holds the name {}; 'lab node delete {}' "
        "forgets it and frees the name\n",
        n.name, r->previous_name, r->previous_node_id);
  }
  return cli::kExitOk;
}

// `labd status` exit codes, for health checks (documented in its --help).
constexpr int kStatusRefused = 3;     // the coordinator refuses this node (revoked, expired)
constexpr int kStatusNotCurrent = 4;  // unreachable, failing, not synced yet, or not running
constexpr int kStatusNotJoined = 5;
constexpr const char* kStatusExitCodes =
    "Exit status:\n"
    "  0  ok: the last sync round confirmed the cache current\n"
    "  1  the status cannot be read (the node's state does not open here)\n"
    "  3  refused: the coordinator refuses this node (revoked, or its certificate expired\n"
    "     longer ago than the renewal grace: 'labd rejoin')\n"
    "  4  not current: coordinator unreachable, sync failing, no round finished yet since\n"
    "     labd started, or labd not running (the cache is served, but nobody updates it)\n"
    "  5  not joined";

int status_exit_code(const boost::json::object& o) {
  if (const auto* joined = o.if_contains("joined");
      joined && joined->is_bool() && !joined->as_bool())
    return kStatusNotJoined;
  if (o.contains("error"))
    return cli::kExitFailure;
  const auto* sync = o.if_contains("sync");
  if (sync == nullptr || !sync->is_string())
    return kStatusNotCurrent;
  if (sync->as_string() == "ok")
    return cli::kExitOk;
  return sync->as_string() == "refused" ? kStatusRefused : kStatusNotCurrent;
}

// One value of the status as text: times (seconds since the epoch in the JSON) as ISO 8601 with
// their age, durations in seconds with a short form beside them.
std::string status_text(std::string_view key, const boost::json::value& v, std::int64_t now) {
  static constexpr std::array<std::string_view, 5> kTimes = {
      "issued_at", "last_contact", "last_confirmed", "applied_at", "joined_at"};
  if (v.is_string())
    return std::string(v.as_string());
  const bool time = std::find(kTimes.begin(), kTimes.end(), key) != kTimes.end();
  if (v.is_null() && time)
    return "never";
  if (v.is_int64() && time && v.as_int64() > 0)
    return fmt::format("{} ({} ago)", lab::shared::text::format_time(v.as_int64()),
                       lab::shared::text::format_age(now - v.as_int64()));
  if (v.is_int64() && key.ends_with("_seconds"))
    return fmt::format("{} ({})", v.as_int64(), lab::shared::text::format_age(v.as_int64()));
  return lab::shared::json::to_string(v);
}

int do_status(const Global& g, cli::Output output) {
  auto s = settings(g);
  if (!s)
    return cli::kExitUsage;
  auto doc = daemon::status_json(*s);
  if (!doc)
    return fail(doc.error());
  auto o = lab::shared::json::parse_object(*doc);
  if (!o)
    return fail(o.error());
  if (cli::is_document(output)) {
    cli::print_document(*o, output);
    return status_exit_code(*o);
  }
  const std::int64_t now = std::time(nullptr);
  for (const auto& [k, v] : *o) {
    if (k == "checks" && v.is_array()) {
      // One line per check: "nginx  failing since 2026-12-06T07:01:31Z (12s ago): HTTP 503".
      for (const auto& c : v.as_array()) {
        const auto* r = c.if_object();
        if (r == nullptr)
          continue;
        auto str = [&](const char* f) {
          const auto* x = r->if_contains(f);
          return x != nullptr && x->is_string() ? std::string(x->as_string()) : std::string();
        };
        const auto* since = r->if_contains("since");
        fmt::print("{:<22} {} {} since {}: {}\n", "check", str("name"), str("status"),
                   status_text("last_contact", since ? *since : boost::json::value(), now),
                   str("reason"));
      }
      continue;
    }
    fmt::print("{:<22} {}\n", std::string_view(k.data(), k.size()), status_text(k, v, now));
  }
  return status_exit_code(*o);
}

int do_labels(const Global& g, cli::Output output) {
  auto s = settings(g);
  if (!s)
    return cli::kExitUsage;
  auto a = daemon::local_get(*s, "/v1/labels");
  if (!a)
    return fail(a.error());
  if (a->status != 200)
    return fail(
        lab::Error(daemon::DaemonError::local_api, fmt::format("HTTP {}: {}", a->status, a->body)));
  auto o = lab::shared::json::parse_object(a->body);
  if (!o)
    return fail(o.error());
  if (cli::is_document(output)) {
    cli::print_document(*o, output);
    return cli::kExitOk;
  }
  auto rev_r = lab::shared::json::get_int(*o, "revision");
  const std::int64_t rev = rev_r ? *rev_r : 0;
  const auto stale = lab::shared::json::optional_int(*o, "staleness_seconds");
  fmt::print("# revision {}, {}{}\n", rev,
             stale && *stale ? fmt::format("confirmed current by the coordinator {}s ago", **stale)
                             : std::string("never confirmed current by the coordinator"),
             a->from_daemon ? "" : " (read from the cache; labd is not running)");
  if (auto labels = lab::shared::json::get_object(*o, "labels"); labels) {
    for (const auto& [k, v] : **labels) {
      fmt::print("{}={}\n", std::string_view(k.data(), k.size()),
                 v.is_string() ? std::string(v.as_string()) : std::string());
    }
  }
  return cli::kExitOk;
}

int do_secret_get(const Global& g, const std::string& name) {
  auto s = settings(g);
  if (!s)
    return cli::kExitUsage;
  auto a = daemon::local_get(*s, "/v1/secrets/" + name);
  if (!a)
    return fail(a.error());
  if (a->status == 404) {
    cli::print_error(kProgram, "no secret '" + name + "' for this node",
                     "'labd status' shows the revision; the secret may not be granted to it");
    return cli::kExitFailure;
  }
  if (a->status == 403) {
    cli::print_error(kProgram, "not allowed to read secret '" + name + "'",
                     "run as root, or grant this user with [[secret_access]] in labd.toml");
    return cli::kExitFailure;
  }
  if (a->status != 200)
    return fail(lab::Error(daemon::DaemonError::local_api, fmt::format("HTTP {}", a->status)));
  if (std::fwrite(a->body.data(), 1, a->body.size(), stdout) != a->body.size() ||
      std::fflush(stdout) != 0) {
    cli::print_error(kProgram, "writing the secret to stdout failed");
    return cli::kExitFailure;
  }
  return cli::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"labd: the lab node agent (join, TPM-sealed cache, sync, local API)", kProgram};
  app.require_subcommand(0, 1);
  Global g;
  app.add_option("--config", g.config, "config file (default /etc/lab/labd.toml, $LABD_CONFIG)");
  app.add_option("--data-dir", g.data_dir, "node state directory (default /var/lib/labd)");
  app.add_option("--socket", g.socket, "local API socket (default /run/lab/labd.sock)");
  app.add_option("--set", g.sets, "any config key: --set key_protection=file");
  cli::Output output = cli::Output::text;
  cli::add_output_option(app, output);
  cli::Action action;
  app.add_flag_callback(
      "--config-template",
      [&] {
        action = [] {
          fmt::print("{}",
                     lab::shared::config::commented_template(daemon::schema(), kConfigHeader));
          return cli::kExitOk;
        };
      },
      "print the default labd.toml (every key commented out with its default) and exit");

  std::string js;
  std::string join_file;
  int timeout = 30;
  std::string hostname;
  constexpr const char* kJoinStringHelp =
      "from 'lab token create'; '-' reads it from stdin. Given here it is visible to every local "
      "user (ps) until the join ends: prefer '-' or --join-file";
  constexpr const char* kJoinFileHelp = "read the join string from the first line of this file";
  auto* join = app.add_subcommand("join", "Enrol this node with a one-time join string");
  join->fallthrough();
  auto* join_arg = join->add_option("join-string", js, kJoinStringHelp);
  join->add_option("--join-file", join_file, kJoinFileHelp)->excludes(join_arg);
  join->add_option("--timeout", timeout, "seconds to wait for the coordinator (1..3600)")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  join->add_option("--hostname", hostname, "name to enrol under (default: this host's name)");
  join->callback(
      [&] { action = [&] { return do_join(g, js, join_file, false, timeout, hostname); }; });

  auto* rejoin = app.add_subcommand(
      "rejoin",
      "Enrol again with a new join string and new keys. While the node's key still works it "
      "proves who the node is and the coordinator keeps it (same id, name, labels); a revoked "
      "node, one whose certificate expired past the renewal grace, or one whose data key no "
      "longer opens (its key and cache are then replaced) becomes a new node");
  rejoin->fallthrough();
  auto* rejoin_arg = rejoin->add_option("join-string", js, kJoinStringHelp);
  rejoin->add_option("--join-file", join_file, kJoinFileHelp)->excludes(rejoin_arg);
  rejoin->add_option("--timeout", timeout, "seconds to wait for the coordinator (1..3600)")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  rejoin->add_option("--hostname", hostname, "name to enrol under (default: this host's name)");
  rejoin->callback(
      [&] { action = [&] { return do_join(g, js, join_file, true, timeout, hostname); }; });

  auto* run = app.add_subcommand("run", "Run the agent (the service's command)");
  run->fallthrough();
  run->callback([&] {
    action = [&] {
      auto s = settings(g);
      return s ? daemon::run(*s) : cli::kExitUsage;
    };
  });

  std::string cmdline = "/proc/cmdline";
  auto* boot = app.add_subcommand(
      "boot",
      "Network boot (agent OS): join with lab.join from the kernel command line, wait for the "
      "operator when discovered, report ready, then run the agent");
  boot->fallthrough();
  boot->add_option("--cmdline", cmdline, "file holding the kernel command line")
      ->capture_default_str();
  boot->callback([&] {
    action = [&] {
      auto s = settings(g);
      if (!s) {
        fmt::print("{}failed: the agent's configuration does not load\n",
                   lab::agent::boot::kConsolePrefix);
        return cli::kExitUsage;
      }
      lab::agent::boot::BootOptions o;
      o.cmdline = cmdline;
      return lab::agent::boot::boot(*s, o);
    };
  });

  auto* status =
      app.add_subcommand("status", "Node id, revision, sync outcome, staleness, key protection");
  status->footer(kStatusExitCodes);
  status->fallthrough();
  status->callback([&] { action = [&] { return do_status(g, output); }; });

  auto* labels = app.add_subcommand("labels", "This node's labels, from the cache");
  labels->fallthrough();
  labels->callback([&] { action = [&] { return do_labels(g, output); }; });

  std::string name;
  auto* secret = app.add_subcommand("secret", "Entitled secrets");
  secret->fallthrough();
  secret->require_subcommand(1);
  auto* get = secret->add_subcommand("get", "Print a secret's value (root or granted users)");
  get->fallthrough();
  get->add_option("name", name)->required();
  get->callback([&] { action = [&] { return do_secret_get(g, name); }; });

  cli::add_example(*status, "labd status -o json | jq .staleness_seconds");
  cli::add_example(*labels, "labd labels -o yaml");
  cli::add_docs_commands(app, action);
  cli::describe_inherited_options(app);
  return cli::run(app, argc, argv, action);
}
