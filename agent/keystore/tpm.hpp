#pragma once
// Sealing a small secret to this machine's TPM through tpm2-tss ESAPI. Every call opens the
// TCTI, does its work and flushes every object and session it created, on every path; calls
// are serialised process-wide, because a TPM without a resource manager (swtpm) has three
// transient slots and fails parallel clients.

#include "agent/keystore/error.hpp"
#include "shared/crypto/bytes.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lab::agent::keystore {

/// What the TPM returns from a seal: the marshalled TPM2B_PUBLIC and TPM2B_PRIVATE of the
/// sealed object (only this TPM can load them), and the PCRs its policy binds to.
struct SealedBlob {
  shared::crypto::Bytes public_area;
  shared::crypto::Bytes private_area;
  std::vector<std::uint32_t> pcrs;  // SHA-256 bank; empty: no policy
  /// The SHA-256 value of each of `pcrs` when the key was sealed, in the same order; empty for
  /// a blob of version 1 (sealed before they were recorded). Not trusted for anything: only
  /// to say which PCR changed when the policy fails.
  std::vector<shared::crypto::Bytes> pcr_values;
};

/// File form: "LABK" | version u8 (2) | pcr count u8 | pcrs (u8 each) | value count u8 (0 or
/// the pcr count) | 32-byte values | u16 len | public | u16 len | private. Version 1 (no value
/// count, no values) is still read.
shared::crypto::Bytes serialize(const SealedBlob& blob);
/// bad_blob when the bytes are not a complete blob of this format.
Result<SealedBlob> parse_blob(shared::crypto::ByteView bytes);

/// "PCRs 7, 16".
std::string describe_pcrs(const std::vector<std::uint32_t>& pcrs);

/// Seals `secret` (at most 128 bytes) under an ECC P-256 storage primary of the owner
/// hierarchy, with a PCR policy when `pcrs` is not empty. `tcti` is passed to
/// Tss2_TctiLdr_Initialize verbatim ("device:/dev/tpmrm0", "swtpm:path=…"); an empty string is
/// refused (bad_tcti). no_tpm when the TCTI cannot be opened.
Result<SealedBlob> tpm_seal(std::string_view tcti, shared::crypto::ByteView secret,
                            const std::vector<std::uint32_t>& pcrs);

/// Unseals over a salted session (the secret never crosses the bus in clear). other_tpm when
/// the blob belongs to another TPM, pcr_policy_failed when a PCR changed: the message names
/// the PCRs that differ from their values at seal time, with both values.
Result<shared::crypto::SecretBytes> tpm_unseal(std::string_view tcti, const SealedBlob& blob);

/// True when the TCTI opens and the TPM answers Startup.
bool tpm_available(std::string_view tcti);

}  // namespace lab::agent::keystore
