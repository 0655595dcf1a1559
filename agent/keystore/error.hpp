#pragma once

#include "shared/errors/error.hpp"

namespace lab::agent::keystore {

enum class KeystoreError {
  no_tpm = 1,         // key_protection = "tpm" but the TCTI cannot reach a TPM
  bad_tcti,           // an empty TCTI: tctildr would silently fall back to other TPMs
  tpm_startup,        // Esys_Initialize or Esys_Startup failed
  create_primary,     // the storage primary key could not be created
  policy,             // building the PCR policy digest failed
  seal_failed,        // Esys_Create of the sealed object failed
  marshal,            // the sealed object could not be (un)marshalled
  load_failed,        // Esys_Load of the sealed object failed (other than integrity)
  session,            // starting the salted session failed
  unseal_failed,      // Esys_Unseal failed (other than a policy check)
  other_tpm,          // TPM_RC_INTEGRITY: the blob was sealed by another TPM (or after a clear)
  pcr_policy_failed,  // TPM_RC_POLICY_FAIL: a PCR in the policy changed since sealing
  bad_blob,           // the sealed key file is damaged
  bad_pcr,            // a PCR index outside 0..23
  key_file,           // file mode: the key file is unreadable, of the wrong size or mode
  mode_mismatch,      // the state dir holds a key of the other protection mode
  io,                 // reading or writing a key file failed
  wrap_failed,        // encrypting data under the data key failed
  unwrap_failed,      // decrypting data under the data key failed (wrong key or tampered)
  tss2_missing,       // a tpm2-tss library (or a function in it) could not be loaded
};
const boost::system::error_category& keystore_category() noexcept;
inline boost::system::error_code make_error_code(KeystoreError e) noexcept {
  return {static_cast<int>(e), keystore_category()};
}

}  // namespace lab::agent::keystore

template <>
struct boost::system::is_error_code_enum<lab::agent::keystore::KeystoreError> : std::true_type {};
