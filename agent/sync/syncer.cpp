#include "agent/sync/syncer.hpp"

#include "agent/sync/proof.hpp"
#include "shared/crypto/random.hpp"
#include "shared/crypto/x509.hpp"
#include "shared/http/beast_client/client.hpp"
#include "shared/json/json.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <optional>

namespace lab::agent::sync {
namespace {

namespace crypto = shared::crypto;
namespace http = shared::http;

// The "code" and "error" members of a coordinator's JSON error answer (empty when absent).
std::pair<std::string, std::string> error_of(const http::BeastResponse& r) {
  auto o = shared::json::parse_object(r.body);
  if (!o)
    return {};
  auto code = shared::json::get_string(*o, "code");
  auto message = shared::json::get_string(*o, "error");
  return {code ? *code : std::string(), message ? *message : std::string()};
}

// Retry-After as delta-seconds (RFC 9110 10.2.3); nullopt when absent or an HTTP-date, which
// the coordinator never sends.
std::optional<std::chrono::seconds> retry_after_of(const http::BeastResponse& r) {
  const auto v = r.headers.get("Retry-After");
  if (!v || v->empty() || v->size() > 9)
    return std::nullopt;
  std::int64_t n = 0;
  for (const char c : *v) {
    if (c < '0' || c > '9')
      return std::nullopt;
    n = n * 10 + (c - '0');
  }
  return std::chrono::seconds(n);
}

Result<std::string> certificate_of(const http::BeastResponse& r, std::string_view what) {
  auto o = shared::json::parse_object(r.body);
  if (!o)
    return Error(SyncError::bad_response, fmt::format("{} answer: {}", what, o.error().message()));
  auto cert = shared::json::get_string(*o, "certificate");
  if (!cert)
    return Error(SyncError::bad_response,
                 fmt::format("{} answer: {}", what, cert.error().message()));
  return *cert;
}

// A revision header of a poll answer; 0 when absent or not a number.
std::int64_t revision_header(const http::BeastResponse& r, std::string_view name) {
  const auto v = r.headers.get(name);
  if (!v || v->empty() || v->size() > 18)
    return 0;
  std::int64_t n = 0;
  for (const char c : *v) {
    if (c < '0' || c > '9')
      return 0;
    n = n * 10 + (c - '0');
  }
  return n;
}

class HttpTransport final : public Transport {
 public:
  HttpTransport(const cache::Identity& id, std::chrono::seconds wait)
      : url_(id.coordinator_url), ca_pem_(id.ca_pem) {
    http::BeastClientOptions o;
    o.base_url = id.coordinator_url;
    o.ca_pem = id.ca_pem;
    o.client_cert_pem = id.certificate_pem;
    o.client_key_pem = id.tls_key_pem;
    // The server holds a long-poll for `wait`; allow for that plus a slow network.
    o.timeout =
        std::chrono::duration_cast<std::chrono::milliseconds>(wait) + std::chrono::seconds(20);
    o.max_body = std::size_t{64} * 1024 * 1024;
    client_ = std::make_unique<http::BeastClient>(std::move(o));
  }

  Result<PollAnswer> fetch_bundle(std::int64_t since, std::chrono::seconds wait,
                                  std::optional<std::int64_t> kept_since) override {
    std::string target = fmt::format("/v1/agent/bundle?since={}&wait={}", since, wait.count());
    if (kept_since)
      target += fmt::format("&kept={}", *kept_since);
    auto r = client_->get(target);
    if (!r)
      return transport_error(r.error());
    if (r->status != 204 && r->status != 200)
      return status_error(*r, "bundle");
    PollAnswer a;
    a.fleet_revision = revision_header(*r, "Lab-Fleet-Revision");
    a.kept_revision = revision_header(*r, "Lab-Kept-Revision");
    if (r->status == 200)
      a.envelope = crypto::to_bytes(r->body);
    return a;
  }

  Result<shared::protocol::Kept> fetch_kept(std::int64_t since) override {
    auto r = client_->get(fmt::format("/v1/agent/kept?since={}", since));
    if (!r)
      return transport_error(r.error());
    if (r->status != 200)
      return status_error(*r, "kept envelopes");
    auto o = shared::json::parse_object(r->body, {.max_size = r->body.size() + 1, .max_depth = 8});
    if (!o)
      return Error(SyncError::bad_response, "kept envelopes: " + o.error().message());
    auto k = shared::protocol::kept_from_json(*o);
    if (!k)
      return Error(SyncError::bad_response, "kept envelopes: " + k.error().message());
    return std::move(*k);
  }

  Result<std::optional<crypto::Bytes>> fetch_fleet(std::int64_t since) override {
    auto r = client_->get(fmt::format("/v1/agent/fleet?since={}", since));
    if (!r)
      return transport_error(r.error());
    if (r->status == 204)
      return std::optional<crypto::Bytes>{};
    if (r->status != 200)
      return status_error(*r, "fleet envelope");
    return std::optional<crypto::Bytes>(crypto::to_bytes(r->body));
  }

  Result<void> report(std::string_view state, const boost::json::object& facts) override {
    boost::json::object body;
    body["state"] = state;
    body["facts"] = facts;
    auto r = client_->post_json("/v1/agent/report", boost::json::serialize(body));
    if (!r)
      return transport_error(r.error());
    retry_after_.reset();
    if (r->status == 429)
      retry_after_ = retry_after_of(*r);
    if (r->status != 204 && r->status != 200)
      return status_error(*r, "report");
    return {};
  }

  [[nodiscard]] std::optional<std::chrono::seconds> retry_after() const override {
    return retry_after_;
  }

  Result<std::string> renew(std::string_view csr_pem) override {
    boost::json::object body;
    body["csr"] = csr_pem;
    auto r = client_->post_json("/v1/agent/renew", boost::json::serialize(body));
    if (!r)
      return transport_error(r.error());
    if (r->status != 200)
      return status_error(*r, "renew");
    return certificate_of(*r, "renew");
  }

  Result<std::string> renew_with_proof(const shared::protocol::RenewRequest& request) override {
    if (!anonymous_) {
      // Its own connection: the coordinator refuses an expired certificate in the handshake's
      // aftermath, so none is presented; the server is still checked against the node's CA.
      http::BeastClientOptions o;
      o.base_url = url_;
      o.ca_pem = ca_pem_;
      o.timeout = std::chrono::seconds(30);
      o.max_body = std::size_t{1024} * 1024;
      anonymous_ = std::make_unique<http::BeastClient>(std::move(o));
    }
    auto r = anonymous_->post_json("/v1/renew",
                                   boost::json::serialize(shared::protocol::to_json(request)));
    if (!r)
      return transport_error(r.error());
    if (r->status != 200)
      return status_error(*r, "renewal by key proof");
    return certificate_of(*r, "renewal by key proof");
  }

 private:
  Error transport_error(const Error& e) const {
    return {SyncError::unreachable, fmt::format("{}: {}", url_, e.message())};
  }
  static Error status_error(const http::BeastResponse& r, std::string_view what) {
    const auto [code, message] = error_of(r);
    if (r.status == 403 && code == "renew_grace_passed")
      return {SyncError::renew_grace_passed, fmt::format("{}: {}", what, message)};
    if (r.status == 403 && code == "invalid_proof")
      return {SyncError::proof_refused, fmt::format("{}: {}", what, message)};
    if (r.status == 401 || r.status == 403) {
      return {SyncError::forbidden,
              fmt::format("{}: HTTP {}: the coordinator refuses this node's certificate", what,
                          r.status)};
    }
    if (r.status == 429) {
      return {SyncError::rate_limited,
              fmt::format("{}: HTTP 429: {}", what, message.empty() ? "come back later" : message)};
    }
    return {SyncError::rejected,
            fmt::format("{}: HTTP {}: {}", what, r.status, r.body.substr(0, 200))};
  }

  std::string url_;
  std::string ca_pem_;
  std::unique_ptr<http::BeastClient> client_;
  std::unique_ptr<http::BeastClient> anonymous_;     // for POST /v1/renew, made on first use
  std::optional<std::chrono::seconds> retry_after_;  // of the last report answered 429
};

std::chrono::system_clock::time_point at(std::int64_t unix_seconds) {
  return std::chrono::system_clock::time_point(std::chrono::seconds(unix_seconds));
}

}  // namespace

Result<shared::protocol::Kept> Transport::fetch_kept(std::int64_t /*since*/) {
  return Error(SyncError::rejected, "this transport does not relay kept envelopes");
}

Result<std::optional<crypto::Bytes>> Transport::fetch_fleet(std::int64_t /*since*/) {
  return Error(SyncError::rejected, "this transport does not carry the fleet envelope");
}

std::unique_ptr<Transport> make_http_transport(const cache::Identity& identity,
                                               std::chrono::seconds wait) {
  return std::make_unique<HttpTransport>(identity, wait);
}

Health health_of(const Error& e) {
  if (e.code().category() != sync_category())
    return Health::failing;  // the cache's refusals: signature, node, sealed secrets, storage
  switch (static_cast<SyncError>(e.code().value())) {
    case SyncError::forbidden:
    case SyncError::renew_grace_passed:
    case SyncError::proof_refused:
    case SyncError::invalid_token:
      return Health::refused;
    case SyncError::unreachable:
    case SyncError::tls_failed:
    case SyncError::wrong_pin:
      return Health::unreachable;
    default:
      return Health::failing;
  }
}

const char* health_name(Health h) noexcept {
  switch (h) {
    case Health::ok:
      return "ok";
    case Health::refused:
      return "refused";
    case Health::unreachable:
      return "unreachable";
    case Health::failing:
      return "failing";
  }
  return "failing";
}

Syncer::Syncer(cache::Cache& cache, TransportFactory make_transport, SyncOptions options,
               SyncHooks hooks, std::function<std::int64_t()> now)
    : cache_(cache),
      make_transport_(std::move(make_transport)),
      options_(std::move(options)),
      hooks_(std::move(hooks)),
      now_(std::move(now)) {}

Result<void> Syncer::ensure_transport() {
  if (transport_)
    return {};
  LAB_TRY_ASSIGN(cache::Identity id, cache_.identity());
  transport_ = make_transport_(id);
  return {};
}

void Syncer::report_if_due(std::int64_t now) {
  if (reported_ || options_.report_state.empty() || now < report_after_)
    return;
  // The report only refreshes the coordinator's view of this node; a failure is retried after
  // a later successful poll and never holds a bundle back.
  boost::json::object facts = options_.report_facts;
  if (options_.report_extras) {
    for (auto& kv : options_.report_extras())
      facts[kv.key()] = std::move(kv.value());
  }
  auto r = transport_->report(options_.report_state, facts);
  reported_ = static_cast<bool>(r);
  if (r)
    return;
  std::chrono::seconds wait{0};
  if (r.error() == SyncError::rate_limited) {
    // The coordinator's delay when it names one, within bounds a hostile answer cannot push
    // past; else the configured one.
    wait = std::clamp(transport_->retry_after().value_or(options_.report_retry),
                      std::chrono::seconds(1), std::chrono::seconds(3600));
    report_after_ = now + wait.count();
  }
  if (hooks_.report_failed)
    hooks_.report_failed(r.error(), wait);
}

Result<std::optional<std::int64_t>> Syncer::poll_once() {
  auto r = poll_answer();
  // Every answered poll, not only one that applied a bundle: confirming the cache current and
  // following the kept envelopes free memory too, and an idle agent should not hold it.
  if (r && settled_)
    settled_();
  return r;
}

Result<std::optional<std::int64_t>> Syncer::poll_answer() {
  LAB_TRY(ensure_transport());
  LAB_TRY_ASSIGN(std::int64_t since, cache_.revision());
  std::optional<std::int64_t> kept_since;
  if (peers_ != nullptr) {
    LAB_TRY_ASSIGN(cache::KeptSummary held, cache_.kept());
    kept_since = held.revision;
  }
  auto fetched = transport_->fetch_bundle(
      since, quick_poll_ ? std::chrono::seconds(0) : options_.wait, kept_since);
  if (!fetched) {
    if (hooks_.contact)
      hooks_.contact(fetched.error() != SyncError::unreachable, now_());
    reported_ = false;
    quick_poll_ = true;
    return fetched.error();
  }
  quick_poll_ = false;
  const std::int64_t now = now_();
  if (hooks_.contact)
    hooks_.contact(true, now);
  report_if_due(now);
  if (peers_ != nullptr) {
    // Keeping others' envelopes is a service to peers: a failure is this round's error only
    // after the node's own bundle was handled.
    if (auto followed = follow_peers(*fetched); !followed && hooks_.failed)
      hooks_.failed(followed.error(), std::chrono::milliseconds(0));
  }
  if (!fetched->envelope) {
    LAB_TRY(cache_.touch(now));
    if (hooks_.confirmed)
      hooks_.confirmed(now);
    return std::optional<std::int64_t>{};
  }
  std::int64_t revision = 0;
  {
    const std::lock_guard lock(apply_mutex_);
    {
      // Scoped so the envelope and the parsed bundle are freed before the view is built.
      auto applied = cache_.apply(*fetched->envelope, now);
      fetched->envelope.reset();
      if (!applied) {
        if (applied.error() == cache::CacheError::not_newer) {
          LAB_TRY(cache_.touch(now));
          if (hooks_.confirmed)
            hooks_.confirmed(now);
          return std::optional<std::int64_t>{};
        }
        quick_poll_ = true;
        return applied.error();
      }
      revision = applied->revision;
    }
    if (hooks_.applied) {
      LAB_TRY_ASSIGN(cache::View view, cache_.view());
      hooks_.applied(view);
    }
  }
  if (hooks_.confirmed)
    hooks_.confirmed(now);
  return std::optional<std::int64_t>(revision);
}

Result<void> Syncer::follow_peers(const PollAnswer& answer) {
  if (answer.fleet_revision > peers_->fleet_revision()) {
    LAB_TRY_ASSIGN(auto fleet, transport_->fetch_fleet(peers_->fleet_revision()));
    if (fleet)
      peers_->offer_fleet(*fleet);
  }
  LAB_TRY_ASSIGN(cache::KeptSummary held, cache_.kept());
  const bool dropped_all = answer.kept_revision == 0 && !held.node_ids.empty();
  if (answer.kept_revision <= held.revision && !dropped_all)
    return {};
  // Newer envelopes for the nodes this one keeps, or (revision 0) it keeps none any more.
  LAB_TRY_ASSIGN(shared::protocol::Kept kept, transport_->fetch_kept(held.revision));
  for (const auto& envelope : kept.envelopes) {
    // Each is checked on its own (signature, bundle): one bad envelope does not stop the rest.
    if (auto k = cache_.keep(envelope); !k && hooks_.failed)
      hooks_.failed(k.error(), std::chrono::milliseconds(0));
  }
  LAB_TRY(cache_.retain_kept(kept.node_ids));
  if (hooks_.kept) {
    LAB_TRY_ASSIGN(cache::KeptSummary now_held, cache_.kept());
    hooks_.kept(now_held.node_ids.size(), now_held.revision);
  }
  return {};
}

Result<bool> Syncer::sync_from_keepers() {
  if (peers_ == nullptr)
    return false;
  LAB_TRY_ASSIGN(cache::Cache::Keepers held, cache_.keepers());
  if (held.keepers.empty())
    return false;
  auto relayed = peers_->ask_keepers(held.revision, held.keepers);
  if (!relayed)
    return false;
  const std::int64_t now = now_();
  std::int64_t revision = 0;
  {
    const std::lock_guard lock(apply_mutex_);
    {
      // The cache decides: the coordinator's signature, this node, newer than the cached one.
      auto applied = cache_.apply(relayed->envelope, now, &relayed->origin);
      relayed->envelope.clear();
      if (!applied)
        return applied.error();
      revision = applied->revision;
    }
    if (hooks_.applied) {
      LAB_TRY_ASSIGN(cache::View fresh, cache_.view());
      hooks_.applied(fresh);
    }
  }
  if (hooks_.relayed)
    hooks_.relayed(relayed->origin, revision);
  if (settled_)
    settled_();
  return true;
}

Result<bool> Syncer::renew_if_due(bool force) {
  LAB_TRY_ASSIGN(cache::Identity id, cache_.identity());
  auto cert = crypto::Certificate::from_pem(id.certificate_pem);
  if (!cert)
    return Error(SyncError::bad_response, "the stored certificate does not parse");
  const auto not_before = cert->not_before();
  const auto not_after = cert->not_after();
  const auto now = at(now_());
  // Expired (the agent was stopped or cut off past its lifetime): mTLS cannot work any more,
  // only a proof made with the key can renew it, within the coordinator's grace.
  if (now >= not_after)
    return renew_with_proof(id);
  const auto lifetime = std::chrono::duration<double>(not_after - not_before).count();
  const auto left = std::chrono::duration<double>(not_after - now).count();
  if (!force && left > lifetime * options_.renew_fraction)
    return false;
  LAB_TRY(ensure_transport());
  auto key = crypto::EcPrivateKey::generate();
  if (!key)
    return Error(SyncError::keygen, "generating the renewal key failed");
  auto csr = crypto::make_csr(*key, id.name.empty() ? id.node_id : id.name);
  if (!csr)
    return Error(SyncError::keygen, "making the renewal CSR failed");
  LAB_TRY_ASSIGN(std::string pem, transport_->renew(*csr));
  LAB_TRY(install_certificate(id, pem, *key));
  return true;
}

Result<bool> Syncer::renew_by_proof() {
  LAB_TRY_ASSIGN(cache::Identity id, cache_.identity());
  return renew_with_proof(id);
}

Result<bool> Syncer::renew_with_proof(const cache::Identity& id) {
  if (!refused_certificate_.empty() && refused_certificate_ == id.certificate_pem)
    return false;
  LAB_TRY(ensure_transport());
  LAB_TRY_ASSIGN(ProofSigner prove, proof_signer(id.certificate_pem, id.tls_key_pem));
  auto key = crypto::EcPrivateKey::generate();
  if (!key)
    return Error(SyncError::keygen, "generating the renewal key failed");
  auto csr = crypto::make_csr(*key, id.name.empty() ? id.node_id : id.name);
  if (!csr)
    return Error(SyncError::keygen, "making the renewal CSR failed");
  shared::protocol::RenewRequest request;
  request.csr_pem = *csr;
  // Purpose "renew" and no token: the proof over the new CSR is the whole credential.
  LAB_TRY_ASSIGN(request.proof, prove(shared::protocol::key_proof_message("renew", "", *csr)));
  auto pem = transport_->renew_with_proof(request);
  if (!pem) {
    const Error& e = pem.error();
    if (e == SyncError::renew_grace_passed || e == SyncError::forbidden ||
        e == SyncError::proof_refused) {
      // Asking again with the same certificate would get the same answer, and every refusal
      // counts against this address at the coordinator (which then refuses joins too).
      const bool first = refused_certificate_ != id.certificate_pem;
      refused_certificate_ = id.certificate_pem;
      renewal_refusal_ = e;
      if (first && e == SyncError::renew_grace_passed && hooks_.rejoin_needed)
        hooks_.rejoin_needed(e);
    }
    return e;
  }
  LAB_TRY(install_certificate(id, *pem, *key));
  return true;
}

Result<void> Syncer::install_certificate(const cache::Identity& id, const std::string& pem,
                                         const crypto::EcPrivateKey& key) {
  auto fresh = crypto::Certificate::from_pem(pem);
  auto ca = crypto::Certificate::from_pem(id.ca_pem);
  if (!fresh || !ca || fresh->public_key_der() != key.public_key_der() ||
      !crypto::verify_certificate(*fresh, *ca, std::chrono::system_clock::now())) {
    return Error(SyncError::bad_response,
                 "the renewed certificate is not for the new key or not from the CA");
  }
  LAB_TRY(cache_.update_certificate(pem, key.to_pem()));
  transport_.reset();  // the next request presents the new certificate
  refused_certificate_.clear();
  renewal_refusal_.reset();
  if (hooks_.renewed) {
    hooks_.renewed(
        std::chrono::duration_cast<std::chrono::seconds>(fresh->not_after().time_since_epoch())
            .count());
  }
  return {};
}

void Syncer::pause(std::chrono::milliseconds d) {
  std::unique_lock lock(wait_mutex_);
  wake_.wait_for(lock, d, [&] { return stopping_.load(); });
}

void Syncer::run() {
  unsigned failures = 0;
  while (!stopping_) {
    if (auto renewed = renew_if_due(); !renewed && hooks_.failed)
      hooks_.failed(renewed.error(), std::chrono::milliseconds(0));
    const auto started = std::chrono::steady_clock::now();
    auto r = poll_once();
    if (stopping_)
      break;
    if (!r && r.error() == SyncError::forbidden) {
      // The certificate may have expired by the coordinator's clock though not by ours: a
      // renewal by proof fixes that. A revoked node is refused it too, once per certificate.
      transport_.reset();
      if (auto renewed = renew_by_proof(); renewed && *renewed) {
        failures = 0;
        continue;
      }
      // "Expired past the grace: rejoin" says more than the poll's bare 403.
      if (renewal_refusal_ && *renewal_refusal_ == SyncError::renew_grace_passed)
        r = *renewal_refusal_;
    }
    if (r) {
      failures = 0;
      const auto took = std::chrono::steady_clock::now() - started;
      if (!*r && took < options_.min_interval)
        pause(std::chrono::duration_cast<std::chrono::milliseconds>(options_.min_interval - took));
      continue;
    }
    const auto delay = options_.backoff.delay(failures, crypto::random_u64());
    if (failures < 64)
      ++failures;
    if (hooks_.failed)
      hooks_.failed(r.error(), delay);
    pause(delay);
  }
}

void Syncer::stop() {
  {
    const std::lock_guard lock(wait_mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
}

}  // namespace lab::agent::sync
