#include "agent/sync/syncer.hpp"

#include "shared/crypto/random.hpp"
#include "shared/crypto/x509.hpp"
#include "shared/http/beast_client/client.hpp"
#include "shared/json/json.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

namespace lab::agent::sync {
namespace {

namespace crypto = shared::crypto;
namespace http = shared::http;

class HttpTransport final : public Transport {
 public:
  HttpTransport(const cache::Identity& id, std::chrono::seconds wait) : url_(id.coordinator_url) {
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

  Result<std::optional<crypto::Bytes>> fetch_bundle(std::int64_t since,
                                                    std::chrono::seconds wait) override {
    auto r = client_->get(fmt::format("/v1/agent/bundle?since={}&wait={}", since, wait.count()));
    if (!r)
      return transport_error(r.error());
    if (r->status == 204)
      return std::optional<crypto::Bytes>{};
    if (r->status == 200)
      return std::optional<crypto::Bytes>(crypto::to_bytes(r->body));
    return status_error(*r, "bundle");
  }

  Result<void> report(std::string_view state, const boost::json::object& facts) override {
    boost::json::object body;
    body["state"] = state;
    body["facts"] = facts;
    auto r = client_->post_json("/v1/agent/report", boost::json::serialize(body));
    if (!r)
      return transport_error(r.error());
    if (r->status != 204 && r->status != 200)
      return status_error(*r, "report");
    return {};
  }

  Result<std::string> renew(std::string_view csr_pem) override {
    boost::json::object body;
    body["csr"] = csr_pem;
    auto r = client_->post_json("/v1/agent/renew", boost::json::serialize(body));
    if (!r)
      return transport_error(r.error());
    if (r->status != 200)
      return status_error(*r, "renew");
    auto o = shared::json::parse_object(r->body);
    if (!o)
      return Error(SyncError::bad_response, "renew answer: " + o.error().message());
    auto cert = shared::json::get_string(*o, "certificate");
    if (!cert)
      return Error(SyncError::bad_response, "renew answer: " + cert.error().message());
    return *cert;
  }

 private:
  Error transport_error(const Error& e) const {
    return {SyncError::unreachable, fmt::format("{}: {}", url_, e.message())};
  }
  static Error status_error(const http::BeastResponse& r, std::string_view what) {
    if (r.status == 401 || r.status == 403) {
      return {SyncError::forbidden,
              fmt::format("{}: HTTP {}: the coordinator refuses this node's certificate", what,
                          r.status)};
    }
    return {SyncError::rejected,
            fmt::format("{}: HTTP {}: {}", what, r.status, r.body.substr(0, 200))};
  }

  std::string url_;
  std::unique_ptr<http::BeastClient> client_;
};

}  // namespace

std::unique_ptr<Transport> make_http_transport(const cache::Identity& identity,
                                               std::chrono::seconds wait) {
  return std::make_unique<HttpTransport>(identity, wait);
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

Result<std::optional<std::int64_t>> Syncer::poll_once() {
  LAB_TRY(ensure_transport());
  LAB_TRY_ASSIGN(std::int64_t since, cache_.revision());
  auto fetched = transport_->fetch_bundle(since, options_.wait);
  if (!fetched) {
    if (hooks_.contact)
      hooks_.contact(fetched.error() != SyncError::unreachable, now_());
    reported_ = false;
    return fetched.error();
  }
  const std::int64_t now = now_();
  if (hooks_.contact)
    hooks_.contact(true, now);
  if (!reported_ && !options_.report_state.empty()) {
    // The report only refreshes the coordinator's view of this node; a failure is retried
    // after the next successful poll and never holds a bundle back.
    reported_ = static_cast<bool>(transport_->report(options_.report_state, options_.report_facts));
  }
  if (!*fetched) {
    LAB_TRY(cache_.touch(now));
    return std::optional<std::int64_t>{};
  }
  std::int64_t revision = 0;
  {
    const std::lock_guard lock(apply_mutex_);
    {
      // Scoped so the envelope and the parsed bundle are freed before the view is built.
      auto applied = cache_.apply(**fetched, now);
      fetched->reset();
      if (!applied) {
        if (applied.error() == cache::CacheError::not_newer) {
          LAB_TRY(cache_.touch(now));
          return std::optional<std::int64_t>{};
        }
        return applied.error();
      }
      revision = applied->revision;
    }
    if (hooks_.applied) {
      LAB_TRY_ASSIGN(cache::View view, cache_.view());
      hooks_.applied(view);
    }
  }
  if (settled_)
    settled_();
  return std::optional<std::int64_t>(revision);
}

Result<bool> Syncer::renew_if_due(bool force) {
  LAB_TRY_ASSIGN(cache::Identity id, cache_.identity());
  auto cert = crypto::Certificate::from_pem(id.certificate_pem);
  if (!cert)
    return Error(SyncError::bad_response, "the stored certificate does not parse");
  const auto not_before = cert->not_before();
  const auto not_after = cert->not_after();
  const auto lifetime = std::chrono::duration<double>(not_after - not_before).count();
  const auto left = std::chrono::duration<double>(not_after - std::chrono::system_clock::time_point(
                                                                  std::chrono::seconds(now_())))
                        .count();
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
  auto fresh = crypto::Certificate::from_pem(pem);
  auto ca = crypto::Certificate::from_pem(id.ca_pem);
  if (!fresh || !ca || fresh->public_key_der() != key->public_key_der() ||
      !crypto::verify_certificate(*fresh, *ca, std::chrono::system_clock::now())) {
    return Error(SyncError::bad_response,
                 "the renewed certificate is not for the new key or not from the CA");
  }
  LAB_TRY(cache_.update_certificate(pem, key->to_pem()));
  transport_.reset();  // the next request presents the new certificate
  if (hooks_.renewed) {
    hooks_.renewed(
        std::chrono::duration_cast<std::chrono::seconds>(fresh->not_after().time_since_epoch())
            .count());
  }
  return true;
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
    // A refused certificate needs the transport rebuilt after a renewal or rejoin.
    if (r.error() == SyncError::forbidden)
      transport_.reset();
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
