#pragma once
// tpm2-tss opened with dlopen for the length of one TPM operation. The agent talks to the TPM
// at join and at start-up (seal, unseal) and then idles for days: linking tpm2-tss would keep
// its libraries (esys, sys, mu, rc, tctildr: about 1 MiB resident) mapped all that time, and a
// node with key_protection = "file" would need them installed without ever using them.
// systemd loads tpm2-tss the same way (src/shared/tpm2-util.c, dlopen_tpm2).

#include "agent/keystore/error.hpp"

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include <array>
#include <string>

namespace lab::agent::keystore {

/// The shared objects that hold the tpm2-tss functions the keystore calls, by soname (the
/// names of Debian's runtime packages libtss2-esys-3.0.2-0, libtss2-tctildr0, libtss2-mu0 and
/// libtss2-rc0).
struct Tss2Sonames {
  std::string esys = "libtss2-esys.so.0";
  std::string tctildr = "libtss2-tctildr.so.0";
  std::string mu = "libtss2-mu.so.0";
  std::string rc = "libtss2-rc.so.0";
};

/// The tpm2-tss entry points the keystore uses, typed from the tss2 headers. Named after the C
/// functions they point to; valid only while the Tss2Library that filled them is alive.
struct Tss2Api {
  decltype(&::Esys_Initialize) esys_initialize = nullptr;
  decltype(&::Esys_Finalize) esys_finalize = nullptr;
  decltype(&::Esys_Free) esys_free = nullptr;
  decltype(&::Esys_Startup) esys_startup = nullptr;
  decltype(&::Esys_GetCapability) esys_get_capability = nullptr;
  decltype(&::Esys_FlushContext) esys_flush_context = nullptr;
  decltype(&::Esys_CreatePrimary) esys_create_primary = nullptr;
  decltype(&::Esys_StartAuthSession) esys_start_auth_session = nullptr;
  decltype(&::Esys_TRSess_SetAttributes) esys_trsess_set_attributes = nullptr;
  decltype(&::Esys_PolicyPCR) esys_policy_pcr = nullptr;
  decltype(&::Esys_PolicyGetDigest) esys_policy_get_digest = nullptr;
  decltype(&::Esys_Create) esys_create = nullptr;
  decltype(&::Esys_Load) esys_load = nullptr;
  decltype(&::Esys_Unseal) esys_unseal = nullptr;
  decltype(&::Esys_PCR_Read) esys_pcr_read = nullptr;
  decltype(&::Tss2_TctiLdr_Initialize) tctildr_initialize = nullptr;
  decltype(&::Tss2_TctiLdr_Finalize) tctildr_finalize = nullptr;
  decltype(&::Tss2_MU_TPM2B_PUBLIC_Marshal) mu_tpm2b_public_marshal = nullptr;
  decltype(&::Tss2_MU_TPM2B_PUBLIC_Unmarshal) mu_tpm2b_public_unmarshal = nullptr;
  decltype(&::Tss2_MU_TPM2B_PRIVATE_Marshal) mu_tpm2b_private_marshal = nullptr;
  decltype(&::Tss2_MU_TPM2B_PRIVATE_Unmarshal) mu_tpm2b_private_unmarshal = nullptr;
  decltype(&::Tss2_RC_Decode) rc_decode = nullptr;
};

/// The loaded libraries. Move-only; the destructor dlcloses them, so every ESYS and TCTI
/// context must be finalized (and every string from rc_decode copied) before it goes.
class Tss2Library {
 public:
  /// Opens the four libraries and resolves every Tss2Api entry. tss2_missing, naming the
  /// library or function and dlerror(), when one cannot be opened or lacks a function; nothing
  /// stays loaded then.
  static Result<Tss2Library> load(const Tss2Sonames& sonames = {});

  Tss2Library(Tss2Library&& other) noexcept;
  Tss2Library& operator=(Tss2Library&& other) noexcept;
  Tss2Library(const Tss2Library&) = delete;
  Tss2Library& operator=(const Tss2Library&) = delete;
  ~Tss2Library();

  [[nodiscard]] const Tss2Api& api() const noexcept { return api_; }

 private:
  Tss2Library() = default;
  void close() noexcept;

  std::array<void*, 4> handles_{};  // esys, tctildr, mu, rc
  Tss2Api api_;
};

}  // namespace lab::agent::keystore
