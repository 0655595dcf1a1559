#pragma once

#include "shared/errors/error.hpp"

namespace lab::agent::sync {

enum class SyncError {
  already_joined = 1,  // the cache holds an identity
  unreachable,         // the coordinator does not answer (connect, resolve, timeout)
  wrong_pin,           // the server's CA does not match the pin of the join string
  tls_failed,          // the TLS handshake failed with the pinned CA
  invalid_token,       // 403 on join: the token is invalid, used or expired
  rejected,            // any other refusal of the coordinator (status and its reason)
  bad_response,        // an answer that does not parse or does not fit the join
  keygen,              // making the node's keys or CSR failed
  forbidden,           // 401/403 on an agent route: certificate revoked or unknown
  not_modified,        // the long-poll ended without a newer bundle (not a failure)
  rate_limited,        // 429: the coordinator asks this node to come back later
  renew_grace_passed,  // the certificate expired longer ago than the renewal grace: rejoin
  proof_refused,       // the coordinator refused the key proof (signature or certificate)
};
const boost::system::error_category& sync_category() noexcept;
inline boost::system::error_code make_error_code(SyncError e) noexcept {
  return {static_cast<int>(e), sync_category()};
}

/// A short hint for the person at the terminal, per error (empty when none fits).
const char* hint(SyncError e) noexcept;

}  // namespace lab::agent::sync

template <>
struct boost::system::is_error_code_enum<lab::agent::sync::SyncError> : std::true_type {};
