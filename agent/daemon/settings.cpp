#include "agent/daemon/settings.hpp"

#include "shared/config/listen.hpp"

#include <cstring>
#include <system_error>

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX, not in a header

namespace lab::agent::daemon {
namespace {

namespace config = shared::config;
using namespace std::chrono_literals;

config::Schema make_schema() {
  config::Schema access;
  access.string("name", "", "the secret these callers may read")
      .integers("uids", {}, "user ids that may read it")
      .integers("gids", {}, "primary group ids that may read it");
  config::Schema s;
  s.string("data_dir", "/var/lib/labd", "node state: sealed data key, cache, node.json")
      .string("socket", "/run/lab/labd.sock", "unix socket of the local API")
      .choice("key_protection", "tpm", {"tpm", "file"},
              "\"tpm\" seals the data key to the TPM; \"file\" keeps it in a 0600 file "
              "(degraded)")
      .string("tcti", "device:/dev/tpmrm0",
              "TPM access, passed to tctildr verbatim (\"swtpm:path=/run/swtpm.sock\")")
      .integers("tpm_pcrs", {}, "PCRs (SHA-256 bank) the sealed data key is bound to, e.g. [7]")
      .string("render.labels_json", "/run/lab/labels.json", "labels as JSON; empty: off")
      .string("render.env_file", "/run/lab/labels.env", "labels as an env file; empty: off")
      .string("render.secrets_dir", "/run/lab/secrets",
              "one 0400 file per entitled secret (keep it on tmpfs); empty: off")
      .string("render.facts_file", "/etc/puppetlabs/facter/facts.d/lab.json",
              "external facts for OpenVox/Puppet (.yaml for YAML); empty: off")
      .duration("sync.wait", 55s, "long-poll hold asked of the coordinator (1s..55s)")
      .duration("sync.backoff_initial", 1s, "first pause after a failed sync round")
      .duration("sync.backoff_cap", 60s, "longest pause between sync attempts while unreachable")
      .string("peer.listen", "0.0.0.0:8444",
              "where peers reach this node (mTLS, fleet CA): ADDRESS:PORT, or \"off\"; on a "
              "wildcard address only when the node has a routable address (see peer.advertise)")
      .string("peer.advertise", "",
              "ADDRESS:PORT reported to the coordinator for peers; empty: the listen address, "
              "or for a wildcard one the address this node reaches the coordinator from (none "
              "when that is loopback)")
      .duration("peer.gossip_interval", 10s,
                "pause between gossip rounds with one random peer (1s..1h); cut off from the "
                "coordinator, the keepers are asked each round")
      .string("config_run.summary_file", "/opt/puppetlabs/puppet/cache/state/last_run_summary.yaml",
              "the OpenVox/Puppet agent's last run summary, reported as the config pillar; "
              "empty: off")
      .string("metrics.textfile", "",
              "node_exporter textfile the metrics are also written to, atomically (e.g. "
              "/var/lib/prometheus/node-exporter/labd.prom); empty: off (GET /metrics on the "
              "socket still answers)")
      .duration("metrics.textfile_interval", 15s, "how often the textfile is rewritten (1s..1h)")
      .choice("log_level", "info", {"trace", "debug", "info", "warn", "error", "off"}, "log level")
      .tables("secret_access", access,
              "[[secret_access]] name, uids, gids: who besides root "
              "may read a secret through the local API");
  return s;
}

Result<std::vector<std::uint32_t>> pcr_list(const std::vector<std::int64_t>& in) {
  std::vector<std::uint32_t> out;
  for (const auto v : in) {
    if (v < 0 || v > 23) {
      return Error(config::ConfigError::invalid_value,
                   "tpm_pcrs: PCR " + std::to_string(v) + " is outside 0..23");
    }
    out.push_back(static_cast<std::uint32_t>(v));
  }
  return out;
}

template <class Id>
Result<std::vector<Id>> id_list(const std::vector<std::int64_t>& in, std::string_view what) {
  std::vector<Id> out;
  for (const auto v : in) {
    if (v < 0 || v > 0x7fffffff)
      return Error(config::ConfigError::invalid_value, std::string(what) + ": not an id");
    out.push_back(static_cast<Id>(v));
  }
  return out;
}

}  // namespace

keystore::Options Settings::keystore_options() const {
  keystore::Options o;
  o.state_dir = data_dir;
  o.protection = key_protection;
  o.tcti = tcti;
  o.pcrs = tpm_pcrs;
  return o;
}

const config::Schema& schema() {
  static const config::Schema kSchema = make_schema();
  return kSchema;
}

std::map<std::string, std::string, std::less<>> labd_environment() {
  std::map<std::string, std::string, std::less<>> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const auto eq = entry.find('=');
    if (eq == std::string_view::npos || !entry.starts_with("LABD_"))
      continue;
    out.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return out;
}

Result<Settings> load_settings(const SettingSources& in) {
  config::Sources sources;
  if (in.config_file) {
    sources.files.push_back(*in.config_file);
  } else if (auto it = in.environment.find("LABD_CONFIG"); it != in.environment.end()) {
    sources.files.emplace_back(it->second);
  } else {
    std::error_code ec;
    if (std::filesystem::exists(kDefaultConfigFile, ec))
      sources.files.emplace_back(kDefaultConfigFile);
  }
  // LABD_<KEY> is labd's spelling; shared/config reads LAB_<KEY>. The prefix differs from the
  // appliance's so that `lab` and `labd` on one host do not read each other's variables.
  for (const auto& [name, value] : in.environment) {
    if (name != "LABD_CONFIG")
      sources.environment.emplace("LAB_" + name.substr(5), value);
  }
  sources.flags = in.flags;
  LAB_TRY_ASSIGN(config::Config c, config::load(schema(), sources));

  Settings s;
  s.data_dir = c.string("data_dir");
  s.socket = c.string("socket");
  s.key_protection =
      c.string("key_protection") == "file" ? keystore::Protection::file : keystore::Protection::tpm;
  s.tcti = c.string("tcti");
  if (s.tcti.empty()) {
    return Error(config::ConfigError::invalid_value,
                 "tcti: empty; name the TPM explicitly (\"device:/dev/tpmrm0\")");
  }
  LAB_TRY_ASSIGN(s.tpm_pcrs, pcr_list(c.integers("tpm_pcrs")));
  s.render.labels_json = c.string("render.labels_json");
  s.render.env_file = c.string("render.env_file");
  s.render.secrets_dir = c.string("render.secrets_dir");
  s.render.facts_file = c.string("render.facts_file");
  s.poll_wait = c.duration("sync.wait");
  if (s.poll_wait < 1s || s.poll_wait > 55s)
    return Error(config::ConfigError::invalid_value, "sync.wait: between 1s and 55s");
  s.backoff_initial = std::max<std::chrono::seconds>(1s, c.duration("sync.backoff_initial"));
  s.backoff_cap = std::max(s.backoff_initial, c.duration("sync.backoff_cap"));
  s.log_level = c.string("log_level");
  s.peer_listen = c.string("peer.listen");
  if (s.peer_listen != "off")
    LAB_TRY(config::parse_listen("peer.listen", s.peer_listen));
  s.peer_advertise = c.string("peer.advertise");
  if (!s.peer_advertise.empty()) {
    LAB_TRY_ASSIGN(auto a, config::parse_listen("peer.advertise", s.peer_advertise));
    if (a.port == 0 || a.host == "0.0.0.0" || a.host == "::") {
      return Error(config::ConfigError::invalid_value,
                   "peer.advertise = \"" + s.peer_advertise +
                       "\": name the address and port peers connect to, not a wildcard");
    }
  }
  s.gossip_interval = c.duration("peer.gossip_interval");
  if (s.gossip_interval < 1s || s.gossip_interval > 3600s)
    return Error(config::ConfigError::invalid_value, "peer.gossip_interval: between 1s and 1h");
  s.config_run_file = c.string("config_run.summary_file");
  s.metrics_textfile = c.string("metrics.textfile");
  s.metrics_textfile_interval = c.duration("metrics.textfile_interval");
  if (s.metrics_textfile_interval < 1s || s.metrics_textfile_interval > 3600s)
    return Error(config::ConfigError::invalid_value,
                 "metrics.textfile_interval: between 1s and 1h");
  if (!s.metrics_textfile.empty() && s.metrics_textfile.extension() != ".prom")
    return Error(config::ConfigError::invalid_value,
                 "metrics.textfile = \"" + s.metrics_textfile.string() +
                     "\": node_exporter reads only files ending in .prom");
  for (const auto& t : c.tables("secret_access")) {
    localapi::SecretAccess a;
    a.name = t.string("name");
    if (a.name.empty())
      return Error(config::ConfigError::invalid_value, "secret_access: an entry without name");
    LAB_TRY_ASSIGN(a.uids, id_list<uid_t>(t.integers("uids"), "secret_access.uids"));
    LAB_TRY_ASSIGN(a.gids, id_list<gid_t>(t.integers("gids"), "secret_access.gids"));
    s.secret_access.push_back(std::move(a));
  }
  if (s.data_dir.empty() || s.socket.empty())
    return Error(config::ConfigError::invalid_value, "data_dir and socket may not be empty");
  return s;
}

}  // namespace lab::agent::daemon
