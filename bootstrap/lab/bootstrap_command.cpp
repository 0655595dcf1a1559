// lab bootstrap ssh: installs and enrols labd on existing hosts over SSH.
#include "bootstrap/lab/commands.hpp"
#include "bootstrap/lab/output.hpp"
#include "bootstrap/rollout/rollout.hpp"
#include "bootstrap/sshinstall/installer.hpp"
#include "bootstrap/sshinstall/operator_enroller.hpp"
#include "shared/cli/cli.hpp"
#include "shared/config/config.hpp"
#include "shared/labels/label.hpp"

#include <CLI/CLI.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <sys/utsname.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>

namespace lab::bootstrap::commands {
namespace {

constexpr std::string_view kProgram = "lab";

struct BootstrapOptions {
  std::vector<std::string> targets;
  std::string inventory;
  std::string labels;
  std::string identity;
  std::string known_hosts;
  bool accept_new = false;
  bool ask_password = false;
  int parallel = 10;
  int canary = 0;
  int max_failures = -1;
  int retries = 2;
  bool json = false;
  std::string agent;
  std::string package;
  std::vector<std::string> agent_sets;
  std::string server;
  std::string ca;
  std::string token_file;
  std::string data_dir;
  std::string token_ttl = "15m";
};

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): before any thread starts
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
    s.pop_back();
  }
  return s;
}

// Hosts from the command line and the inventory ("[user@]host[:port]" per line, # comments).
Result<std::vector<std::string>> collect_targets(const BootstrapOptions& o) {
  std::vector<std::string> out = o.targets;
  if (!o.inventory.empty()) {
    std::ifstream in(o.inventory);
    if (!in) {
      return Error(sshinstall::InstallError::bad_setting, "cannot read inventory " + o.inventory);
    }
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (const auto hash = line.find('#'); hash != std::string::npos) {
        line.resize(hash);
      }
      const auto b = line.find_first_not_of(" \t\r");
      if (b == std::string::npos) {
        continue;
      }
      const auto e = line.find_last_not_of(" \t\r");
      std::string target = line.substr(b, e - b + 1);
      if (auto t = ssh::parse_target(target); !t) {
        return Error(t.error().code(),
                     o.inventory + ":" + std::to_string(n) + ": " + t.error().detail());
      }
      out.push_back(std::move(target));
    }
  }
  for (const auto& t : out) {
    if (auto parsed = ssh::parse_target(t); !parsed) {
      return parsed.error();
    }
  }
  return out;
}

// labd next to lab (an installed appliance), else on PATH.
std::string default_agent() {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const auto beside = self.parent_path() / "labd";
    if (std::filesystem::exists(beside)) {
      return beside.string();
    }
  }
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/usr/lib/lab"}) {
    const auto p = std::filesystem::path(dir) / "labd";
    if (std::filesystem::exists(p)) {
      return p.string();
    }
  }
  return {};
}

void print_progress(const rollout::HostResult& r, bool finished, std::size_t total,
                    std::size_t& done) {
  if (!finished) {
    fmt::print(stderr, "  ....  {}\n", r.host);
    return;
  }
  ++done;
  fmt::print(stderr, "[{:>3}/{}] {:<28} {:<11} {}{}\n", done, total, r.host,
             rollout::status_name(r.status),
             r.status == rollout::Status::failed ? "at " + r.step + ": " : "", r.message);
}

int report(const std::vector<rollout::HostResult>& results, bool json,
           std::chrono::milliseconds total) {
  int ok = 0;
  for (const auto& r : results) {
    ok += (r.status == rollout::Status::joined || r.status == rollout::Status::skipped) ? 1 : 0;
  }
  if (json) {
    boost::json::array a;
    for (const auto& r : results) {
      a.push_back(boost::json::object{{"host", r.host},
                                      {"status", rollout::status_name(r.status)},
                                      {"step", r.step},
                                      {"message", r.message},
                                      {"node_id", r.node_id},
                                      {"attempts", r.attempts},
                                      {"seconds", static_cast<double>(r.elapsed.count()) / 1000}});
    }
    // JSON on one line: it shares the terminal with the progress on stderr, and scripts take
    // the line that starts with '['.
    if (requested_output() == shared::cli::Output::yaml)
      print_document(a);
    else
      std::cout << boost::json::serialize(a) << "\n";
  } else {
    fmt::print("{:<28} {:<11} {:<8} {:>8}  {}\n", "HOST", "STATUS", "STEP", "SECONDS", "DETAIL");
    for (const auto& r : results) {
      fmt::print("{:<28} {:<11} {:<8} {:>8.1f}  {}\n", r.host, rollout::status_name(r.status),
                 r.step, static_cast<double>(r.elapsed.count()) / 1000,
                 r.status == rollout::Status::joined ? r.node_id : r.message);
    }
    fmt::print("{} of {} host(s) enrolled in {:.1f} s\n", ok, results.size(),
               static_cast<double>(total.count()) / 1000);
  }
  return ok == static_cast<int>(results.size()) ? shared::cli::kExitOk : shared::cli::kExitFailure;
}

int run_bootstrap(const BootstrapOptions& o) {
  auto targets = collect_targets(o);
  if (!targets) {
    shared::cli::print_error(kProgram, targets.error(), "targets look like [user@]host[:port]");
    return shared::cli::kExitUsage;
  }
  if (targets->empty()) {
    shared::cli::print_error(kProgram, "no hosts given", "name hosts or pass --inventory FILE");
    return shared::cli::kExitUsage;
  }
  sshinstall::InstallOptions install;
  if (auto labels = shared::labels::parse_list(o.labels); labels) {
    install.labels = *labels;
  } else {
    shared::cli::print_error(kProgram, labels.error(), "--labels takes k=v,k2=v2");
    return shared::cli::kExitUsage;
  }
  for (const auto& kv : o.agent_sets) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      shared::cli::print_error(kProgram, "--agent-set '" + kv + "' has no '='",
                               "use --agent-set key_protection=file");
      return shared::cli::kExitUsage;
    }
    install.agent_config[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  install.agent = o.agent.empty() ? default_agent() : o.agent;
  if (install.agent.empty() || !std::filesystem::exists(install.agent)) {
    shared::cli::print_error(kProgram, "cannot find the labd binary to install",
                             "pass --agent PATH");
    return shared::cli::kExitFailure;
  }
  utsname u{};
  ::uname(&u);
  install.agent_arch = static_cast<const char*>(u.machine);
  install.package = o.package;
  const std::string home = env_or("HOME", "/root");
  install.connect.known_hosts = o.known_hosts.empty()
                                    ? std::filesystem::path(home) / ".ssh/known_hosts"
                                    : std::filesystem::path(o.known_hosts);
  install.connect.accept_new = o.accept_new;
  install.connect.identity = o.identity;
  install.connect.password = env_or("LAB_SSH_PASSWORD", "");
  if (o.ask_password) {
    // NOLINTNEXTLINE(concurrency-mt-unsafe): single-threaded here
    const char* pw = ::getpass("SSH password: ");
    install.connect.password = pw != nullptr ? pw : "";
  }
  auto ttl = shared::config::parse_duration(o.token_ttl);
  if (!ttl) {
    shared::cli::print_error(kProgram, ttl.error(), "--token-ttl takes a duration like 15m");
    return shared::cli::kExitUsage;
  }

  const std::string data_dir =
      o.data_dir.empty() ? env_or("LAB_DATA_DIR", "/var/lib/lab") : o.data_dir;
  shared::http::ClientOptions client;
  client.base_url = o.server.empty() ? env_or("LAB_SERVER", "") : o.server;
  if (client.base_url.empty()) {
    client.base_url = slurp(data_dir + "/coordinator.url");
  }
  if (client.base_url.empty()) {
    client.base_url = "https://127.0.0.1:8443";
  }
  client.ca_pem = slurp(o.ca.empty() ? env_or("LAB_CA", data_dir + "/ca.pem") : o.ca);
  client.bearer_token = env_or("LAB_TOKEN", "");
  if (client.bearer_token.empty() || !o.token_file.empty()) {
    client.bearer_token = slurp(o.token_file.empty() ? data_dir + "/operator.token" : o.token_file);
  }
  if (client.ca_pem.empty() || client.bearer_token.empty()) {
    shared::cli::print_error(kProgram, "no coordinator CA or operator token",
                             "pass --data-dir of the appliance, or --ca and --token-file");
    return shared::cli::kExitFailure;
  }
  sshinstall::OperatorEnroller enroller(std::move(client),
                                        std::chrono::duration_cast<std::chrono::seconds>(*ttl),
                                        "lab bootstrap ssh");

  rollout::Policy policy;
  policy.parallel = std::max(o.parallel, 1);
  policy.canary = std::max(o.canary, 0);
  if (o.max_failures >= 0) {
    policy.max_failures = o.max_failures;
  }
  policy.retries = std::max(o.retries, 0);
  const bool tty = ::isatty(STDERR_FILENO) != 0 && !o.json;
  std::size_t done = 0;
  const std::size_t total = targets->size();
  rollout::Progress progress;
  if (tty || !o.json) {
    progress = [&](const rollout::HostResult& r, bool finished) {
      print_progress(r, finished, total, done);
    };
  }
  const auto started = std::chrono::steady_clock::now();
  auto results = rollout::run(
      *targets, policy,
      [&](const std::string& host, int /*attempt*/) {
        return sshinstall::install(host, install, enroller);
      },
      progress);
  return report(results, o.json,
                std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - started));
}

}  // namespace

void add_bootstrap(CLI::App& app, shared::cli::Action& action) {
  auto o = std::make_shared<BootstrapOptions>();
  CLI::App* bootstrap = app.add_subcommand("bootstrap", "Bring existing hosts under management");
  bootstrap->require_subcommand(1);
  CLI::App* cmd = bootstrap->add_subcommand(
      "ssh", "Install labd on hosts over SSH and enrol each with a one-time token");
  cmd->add_option("hosts", o->targets, "[user@]host[:port] ...");
  cmd->add_option("--inventory", o->inventory, "file with one [user@]host[:port] per line");
  cmd->add_option("--labels", o->labels, "labels for the new nodes: k=v,k2=v2");
  cmd->add_option("--identity", o->identity, "SSH private key (default: ssh-agent, ~/.ssh/id_*)");
  cmd->add_option("--known-hosts", o->known_hosts, "known_hosts file (default ~/.ssh/known_hosts)");
  cmd->add_flag("--accept-new", o->accept_new, "record unknown host keys instead of refusing");
  cmd->add_flag("--ask-password", o->ask_password,
                "prompt for an SSH password (or set LAB_SSH_PASSWORD)");
  cmd->add_option("--parallel", o->parallel, "hosts at a time (default 10)");
  cmd->add_option("--canary", o->canary, "hosts to do first; any failure among them stops all");
  cmd->add_option("--max-failures", o->max_failures,
                  "stop starting hosts once more than this many failed (default: no limit)");
  cmd->add_option("--retries", o->retries, "retries after a connection error (default 2)");
  cmd->add_flag("--json", o->json,
                "the same as -o json: one JSON document with every host's result");
  cmd->add_option("--agent", o->agent, "labd binary to install (default: beside lab)");
  cmd->add_option("--package", o->package, "labd .deb to install on Debian hosts instead");
  cmd->add_option("--agent-set", o->agent_sets, "labd setting for /etc/lab/labd.toml: key=value");
  cmd->add_option("--token-ttl", o->token_ttl, "lifetime of each host's join token (default 15m)");
  cmd->add_option("--server", o->server, "coordinator URL (default: LAB_SERVER, the data dir's)");
  cmd->add_option("--ca", o->ca, "coordinator CA (default: <data-dir>/ca.pem)");
  cmd->add_option("--token-file", o->token_file,
                  "operator token file (default: LAB_TOKEN, <data-dir>/operator.token)");
  cmd->add_option("--data-dir", o->data_dir, "appliance data directory (default /var/lib/lab)");
  bootstrap->fallthrough();
  cmd->fallthrough();
  cmd->callback([o, &action] {
    if (shared::cli::is_document(requested_output()))
      o->json = true;
    action = [o] { return run_bootstrap(*o); };
  });
}

}  // namespace lab::bootstrap::commands
