#include "agent/sync/join.hpp"

#include "shared/crypto/encoding.hpp"
#include "shared/crypto/keys.hpp"
#include "shared/crypto/x509.hpp"
#include "shared/http/beast_client/client.hpp"
#include "shared/json/json.hpp"

#include <boost/json/serialize.hpp>
#include <fmt/format.h>

namespace lab::agent::sync {
namespace {

namespace crypto = shared::crypto;
namespace http = shared::http;

Error transport_error(const Error& e, std::string_view url) {
  if (e.code().category() == sync_category())
    return e;  // the pin check refused the server's chain
  if (e == http::BeastClientError::tls_handshake || e == http::BeastClientError::tls_verify ||
      e == http::BeastClientError::tls_setup) {
    return {SyncError::tls_failed, fmt::format("TLS with {} failed: {}", url, e.message())};
  }
  return {SyncError::unreachable, fmt::format("cannot reach {}: {}", url, e.message())};
}

std::string error_reason(const http::BeastResponse& r) {
  auto o = shared::json::parse_object(r.body);
  if (o) {
    if (auto e = shared::json::get_string(*o, "error"))
      return *e;
  }
  return r.body.substr(0, 200);
}

std::string error_code(const http::BeastResponse& r) {
  auto o = shared::json::parse_object(r.body);
  if (o) {
    if (auto c = shared::json::get_string(*o, "code"))
      return *c;
  }
  return {};
}

}  // namespace

const boost::system::error_category& sync_category() noexcept {
  static const ErrorCategory<SyncError> kCategory(
      "lab.sync", [](SyncError e) noexcept -> const char* {
        switch (e) {
          case SyncError::already_joined:
            return "already joined";
          case SyncError::unreachable:
            return "coordinator unreachable";
          case SyncError::wrong_pin:
            return "coordinator CA does not match the pin";
          case SyncError::tls_failed:
            return "TLS failed";
          case SyncError::invalid_token:
            return "invalid token";
          case SyncError::rejected:
            return "refused by the coordinator";
          case SyncError::bad_response:
            return "invalid coordinator answer";
          case SyncError::keygen:
            return "key generation failed";
          case SyncError::forbidden:
            return "node certificate refused";
          case SyncError::not_modified:
            return "no newer bundle";
          case SyncError::rate_limited:
            return "rate-limited by the coordinator";
          case SyncError::renew_grace_passed:
            return "certificate expired past the renewal grace";
          case SyncError::proof_refused:
            return "key proof refused";
        }
        return "sync error";
      });
  return kCategory;
}

const char* hint(SyncError e) noexcept {
  switch (e) {
    case SyncError::already_joined:
      return "this node is enrolled; 'labd rejoin <join-string>' enrols it again, as the same "
             "node while its key still works";
    case SyncError::unreachable:
      return "check the coordinator URL in the join string and the network path to it";
    case SyncError::wrong_pin:
      return "the server is not the coordinator that issued this join string; get a fresh "
             "one with 'lab token create'";
    case SyncError::tls_failed:
      return "the server's certificate does not match its address; check the URL";
    case SyncError::invalid_token:
      return "the token is invalid, already used or expired; create a new one with "
             "'lab token create'";
    case SyncError::forbidden:
      return "this node's certificate was revoked or is unknown; rejoin with a new token";
    case SyncError::renew_grace_passed:
      return "the node must join again: 'labd rejoin <join-string>' with a token from "
             "'lab token create'";
    case SyncError::rate_limited:
      return "too many refused requests from this address; wait a minute and try again";
    case SyncError::proof_refused:
      return "the node's key or certificate did not prove who it is; rejoin with a new token";
    default:
      return "";
  }
}

Result<std::string> pinned_ca(const std::vector<std::string>& chain_pem, std::string_view pin,
                              std::chrono::system_clock::time_point now) {
  if (chain_pem.empty())
    return Error(SyncError::wrong_pin, "the server presented no certificate");
  std::vector<crypto::Certificate> chain;
  for (const auto& pem : chain_pem) {
    auto c = crypto::Certificate::from_pem(pem);
    if (!c)
      return Error(SyncError::wrong_pin, "the server presented an unreadable certificate");
    chain.push_back(std::move(*c));
  }
  for (const auto& c : chain) {
    if (crypto::spki_pin(c.public_key_der()) != pin)
      continue;
    if (auto ok = crypto::verify_certificate(chain.front(), c, now); !ok) {
      return Error(
          SyncError::wrong_pin,
          "the server certificate does not chain to the pinned CA: " + ok.error().message());
    }
    return c.pem();
  }
  return Error(SyncError::wrong_pin,
               fmt::format("no certificate presented by the server matches the pin {}", pin));
}

Result<cache::Identity> join(const JoinParams& p) {
  const std::string& url = p.join.url;
  // 1. One connection: the server's chain is looked at before anything is sent, the pinned CA
  // is picked from it, and the server is verified against that CA only (chain and address).
  // The token goes out on this connection once that holds.
  http::BeastClientOptions options;
  options.base_url = url;
  options.choose_ca = [&](const std::vector<std::string>& chain) {
    return pinned_ca(chain, p.join.ca_pin, std::chrono::system_clock::now());
  };
  options.timeout = p.timeout;
  options.connect_timeout = std::min<std::chrono::milliseconds>(p.timeout, options.connect_timeout);
  options.max_body = std::size_t{1024} * 1024;
  http::BeastClient client(std::move(options));

  // 2. The node's keys: P-256 for TLS, X25519 for sealed secrets.
  auto tls_key = crypto::EcPrivateKey::generate();
  auto sealing = crypto::X25519PrivateKey::generate();
  if (!tls_key || !sealing)
    return Error(SyncError::keygen, "generating the node keys failed");
  auto csr = crypto::make_csr(*tls_key, p.hostname.empty() ? "lab-node" : p.hostname);
  if (!csr)
    return Error(SyncError::keygen, "making the CSR failed: " + csr.error().message());

  shared::protocol::JoinRequest req;
  req.token = p.join.token.to_string();
  req.csr_pem = *csr;
  req.sealing_key = crypto::base64url_encode(sealing->public_key().raw());
  req.hostname = p.hostname;
  req.agent_version = p.agent_version;
  req.facts = p.facts;
  if (p.prove) {
    // Over the new CSR: a captured proof is worth nothing without the new key.
    LAB_TRY_ASSIGN(req.proof,
                   p.prove(shared::protocol::key_proof_message("join", p.join.token.id, *csr)));
  }

  // 3. Sent only once the server proved to be the pinned coordinator.
  auto r = client.post_json("/v1/join", boost::json::serialize(shared::protocol::to_json(req)));
  if (!r)
    return transport_error(r.error(), url);
  if (r->status == 403 && error_code(*r) == "invalid_proof") {
    return Error(
        SyncError::proof_refused,
        fmt::format("the coordinator refused this node's key proof: {}", error_reason(*r)));
  }
  if (r->status == 403)
    return Error(SyncError::invalid_token, "the coordinator refused the token");
  if (r->status == 429) {
    return Error(SyncError::rate_limited,
                 fmt::format("the coordinator asks to come back later: {}", error_reason(*r)));
  }
  if (r->status != 200) {
    return Error(SyncError::rejected,
                 fmt::format("join refused with HTTP {}: {}", r->status, error_reason(*r)));
  }
  auto body = shared::json::parse_object(r->body);
  if (!body)
    return Error(SyncError::bad_response, "join answer: " + body.error().message());
  auto resp = shared::protocol::join_response_from_json(*body);
  if (!resp)
    return Error(SyncError::bad_response, resp.error().message());

  // The answer must fit: the CA it names is the pinned one, the certificate is ours and
  // chains to it, and the bundle key decodes.
  auto ca = crypto::Certificate::from_pem(resp->ca_pem);
  if (!ca || crypto::spki_pin(ca->public_key_der()) != p.join.ca_pin)
    return Error(SyncError::bad_response, "the join answer names another CA than the pinned one");
  auto cert = crypto::Certificate::from_pem(resp->certificate_pem);
  if (!cert || cert->public_key_der() != tls_key->public_key_der() ||
      !crypto::verify_certificate(*cert, *ca, std::chrono::system_clock::now())) {
    return Error(SyncError::bad_response,
                 "the certificate of the join answer is not for this node's key or not from "
                 "the pinned CA");
  }
  auto bundle_key = crypto::base64url_decode(resp->bundle_key);
  if (!bundle_key || !crypto::Ed25519PublicKey::from_raw(*bundle_key))
    return Error(SyncError::bad_response, "the bundle key of the join answer does not decode");

  cache::Identity id;
  id.node_id = resp->node_id;
  id.name = resp->name;
  id.coordinator_url = url;
  id.certificate_pem = resp->certificate_pem;
  id.ca_pem = resp->ca_pem;
  id.bundle_key = resp->bundle_key;
  id.state = resp->state;
  id.tls_key_pem = tls_key->to_pem();
  id.sealing_key = sealing->raw();
  return id;
}

}  // namespace lab::agent::sync
