// labd's figures in the Prometheus text format. Written by hand rather than through a registry:
// every value is read from State at the moment of the scrape, and labd stays small.
#include "shared/metrics/metrics.hpp"

#include "agent/localapi/api.hpp"

#include <fmt/format.h>

#include <array>
#include <string_view>

namespace lab::agent::localapi {
namespace {

using shared::metrics::escape_label_value;

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

}  // namespace

std::string metrics_text(const State& state, std::int64_t now) {
  const auto served = state.served();
  const cache::View& view = served->view;
  const SyncStatus sync = state.sync_status();
  std::string out;
  auto sample = [&out](std::string_view name, auto value) {
    fmt::format_to(std::back_inserter(out), "{} {}\n", name, value);
  };

  family(out, "labd_info", "gauge", "Always 1; who this node is and how its keys are kept.");
  fmt::format_to(std::back_inserter(out),
                 "labd_info{{node_id=\"{}\",name=\"{}\",key_protection=\"{}\"}} 1\n",
                 escape_label_value(view.node_id), escape_label_value(view.name),
                 escape_label_value(state.key_protection()));
  family(out, "labd_revision", "gauge", "Revision of the cached view (0: none yet).");
  sample("labd_revision", view.revision);
  family(out, "labd_staleness_seconds", "gauge",
         "Seconds since the coordinator last confirmed the cache current; absent when never.");
  if (const auto stale = staleness(state.last_confirmed(), now))
    sample("labd_staleness_seconds", *stale);
  family(out, "labd_last_contact_timestamp_seconds", "gauge",
         "When the coordinator last answered (any answer), in Unix seconds; absent when never.");
  if (const auto t = state.last_contact())
    sample("labd_last_contact_timestamp_seconds", *t);
  family(out, "labd_coordinator_reachable", "gauge",
         "1 when the last sync round reached the coordinator.");
  sample("labd_coordinator_reachable", state.reachable() ? 1 : 0);
  family(out, "labd_sync_status", "gauge",
         "The last sync round's outcome: 1 for the current one, 0 for the others.");
  constexpr std::array<std::string_view, 5> kOutcomes = {"pending", "ok", "refused", "unreachable",
                                                         "failing"};
  for (const auto outcome : kOutcomes) {
    fmt::format_to(std::back_inserter(out), "labd_sync_status{{status=\"{}\"}} {}\n", outcome,
                   sync.sync == outcome ? 1 : 0);
  }
  family(out, "labd_key_protected", "gauge",
         "1 when the node's keys are sealed by a TPM, 0 when protected by a file only.");
  sample("labd_key_protected", state.key_protection().starts_with("tpm") ? 1 : 0);
  family(out, "labd_certificate_expiry_timestamp_seconds", "gauge",
         "When the node's certificate expires, in Unix seconds (renewed before then).");
  if (const auto t = state.certificate_not_after())
    sample("labd_certificate_expiry_timestamp_seconds", *t);
  family(out, "labd_labels", "gauge", "Labels in the cached view.");
  sample("labd_labels", served->label_count);
  family(out, "labd_secrets", "gauge", "Secrets in the cached view (sealed to this node).");
  sample("labd_secrets", view.secrets.size());
  const auto checks = state.checks();
  family(out, "labd_check_passing", "gauge",
         "1 when the health check's damped state is passing, 0 when failing or pending.");
  for (const auto& c : checks) {
    fmt::format_to(std::back_inserter(out), "labd_check_passing{{check=\"{}\"}} {}\n",
                   escape_label_value(c.name), c.status == "passing" ? 1 : 0);
  }
  family(out, "labd_check_status", "gauge",
         "The health check's damped state: 1 for the current one, 0 for the others.");
  for (const auto& c : checks) {
    for (const std::string_view s : {"passing", "failing", "pending"}) {
      fmt::format_to(std::back_inserter(out),
                     "labd_check_status{{check=\"{}\",status=\"{}\"}} {}\n",
                     escape_label_value(c.name), s, c.status == s ? 1 : 0);
    }
  }
  family(out, "labd_check_duration_seconds", "gauge", "How long the check's last run took.");
  for (const auto& c : checks) {
    fmt::format_to(std::back_inserter(out), "labd_check_duration_seconds{{check=\"{}\"}} {}\n",
                   escape_label_value(c.name), static_cast<double>(c.duration_ms) / 1000.0);
  }
  family(out, "labd_check_last_run_timestamp_seconds", "gauge",
         "When the check last ran, in Unix seconds.");
  for (const auto& c : checks) {
    if (c.checked_at > 0)
      fmt::format_to(std::back_inserter(out),
                     "labd_check_last_run_timestamp_seconds{{check=\"{}\"}} {}\n",
                     escape_label_value(c.name), c.checked_at);
  }
  if (const auto run = state.config_run(); !run.empty()) {
    auto number = [&run](const char* key) -> double {
      const auto* v = run.if_contains(key);
      return v == nullptr     ? 0
             : v->is_int64()  ? static_cast<double>(v->as_int64())
             : v->is_double() ? v->as_double()
                              : 0;
    };
    family(out, "labd_config_run_timestamp_seconds", "gauge",
           "When the last OpenVox/Puppet run ended, in Unix seconds.");
    sample("labd_config_run_timestamp_seconds", number("last_run"));
    family(out, "labd_config_run_failures", "gauge", "Failures of the last OpenVox/Puppet run.");
    sample("labd_config_run_failures", number("failures"));
    family(out, "labd_config_run_changes", "gauge", "Changes the last OpenVox/Puppet run made.");
    sample("labd_config_run_changes", number("changes"));
  }
  if (const auto peer = state.peer_status()) {
    family(out, "labd_fleet_revision", "gauge",
           "Newest fleet revision heard from peers or the coordinator.");
    sample("labd_fleet_revision", peer->fleet_revision);
    family(out, "labd_kept_nodes", "gauge", "Nodes whose envelopes this node keeps for them.");
    sample("labd_kept_nodes", peer->kept_nodes);
  }
  return out;
}

}  // namespace lab::agent::localapi
