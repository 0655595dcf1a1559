#include "agent/keystore/tss2_library.hpp"

#include <fmt/format.h>

#include <dlfcn.h>

#include <string_view>
#include <utility>

namespace lab::agent::keystore {
namespace {

std::string last_dl_error() {
  const char* e = ::dlerror();  // NOLINT(concurrency-mt-unsafe): callers hold the TPM mutex
  return e != nullptr ? e : "unknown dlerror";
}

// dlsym into a typed pointer. POSIX guarantees a data pointer from dlsym converts to a function
// pointer.
template <class Fn>
Result<void> resolve(void* handle, std::string_view soname, const char* name, Fn& out) {
  ::dlerror();  // NOLINT(concurrency-mt-unsafe): clears the state of the check below
  void* sym = ::dlsym(handle, name);
  if (sym == nullptr) {
    return Error(KeystoreError::tss2_missing,
                 fmt::format("{} has no {} ({})", soname, name, last_dl_error()));
  }
  out = reinterpret_cast<Fn>(sym);  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
  return {};
}

}  // namespace

Result<Tss2Library> Tss2Library::load(const Tss2Sonames& sonames) {
  Tss2Library lib;  // closes whatever opened if a later step fails
  const std::array<const std::string*, 4> names = {&sonames.esys, &sonames.tctildr, &sonames.mu,
                                                   &sonames.rc};
  for (std::size_t i = 0; i < names.size(); ++i) {
    lib.handles_[i] = ::dlopen(names[i]->c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib.handles_[i] == nullptr) {
      return Error(KeystoreError::tss2_missing,
                   fmt::format("cannot load the TPM library {} ({}); install tpm2-tss or set "
                               "key_protection = \"file\"",
                               *names[i], last_dl_error()));
    }
  }
  auto [esys, tctildr, mu, rc] = lib.handles_;
  Tss2Api& a = lib.api_;
  LAB_TRY(resolve(esys, sonames.esys, "Esys_Initialize", a.esys_initialize));
  LAB_TRY(resolve(esys, sonames.esys, "Esys_Finalize", a.esys_finalize));
  LAB_TRY(resolve(esys, sonames.esys, "Esys_Free", a.esys_free));
  LAB_TRY(resolve(esys, sonames.esys, "Esys_Startup", a.esys_startup));
  LAB_TRY(resolve(esys, sonames.esys, "Esys_GetCapability", a.esys_get_capability));
  LAB_TRY(resolve(esys, sonames.esys, "Esys_FlushContext", a.esys_flush_context));
  LAB_TRY(resolve(esys, sonames.esys, "Esys_CreatePrimary", a.esys_create_primary));
  LAB_TRY(resolve(esys, sonames.esys, "Esys_StartAuthSession", a.esys_start_auth_session));
  LAB_TRY(resolve(esys, sonames.esys, "Esys_TRSess_SetAttributes", a.esys_trsess_set_attributes));
  LAB_TRY(resolve(esys, sonames.esys, "Esys_PolicyPCR", a.esys_policy_pcr));
  LAB_TRY(resolve(esys, sonames.esys, "Esys_PolicyGetDigest", a.esys_policy_get_digest));
  LAB_TRY(resolve(esys, sonames.esys, "Esys_Create", a.esys_create));
  LAB_TRY(resolve(esys, sonames.esys, "Esys_Load", a.esys_load));
  LAB_TRY(resolve(esys, sonames.esys, "Esys_Unseal", a.esys_unseal));
  LAB_TRY(resolve(esys, sonames.esys, "Esys_PCR_Read", a.esys_pcr_read));
  LAB_TRY(resolve(tctildr, sonames.tctildr, "Tss2_TctiLdr_Initialize", a.tctildr_initialize));
  LAB_TRY(resolve(tctildr, sonames.tctildr, "Tss2_TctiLdr_Finalize", a.tctildr_finalize));
  LAB_TRY(resolve(mu, sonames.mu, "Tss2_MU_TPM2B_PUBLIC_Marshal", a.mu_tpm2b_public_marshal));
  LAB_TRY(resolve(mu, sonames.mu, "Tss2_MU_TPM2B_PUBLIC_Unmarshal", a.mu_tpm2b_public_unmarshal));
  LAB_TRY(resolve(mu, sonames.mu, "Tss2_MU_TPM2B_PRIVATE_Marshal", a.mu_tpm2b_private_marshal));
  LAB_TRY(resolve(mu, sonames.mu, "Tss2_MU_TPM2B_PRIVATE_Unmarshal", a.mu_tpm2b_private_unmarshal));
  LAB_TRY(resolve(rc, sonames.rc, "Tss2_RC_Decode", a.rc_decode));
  return lib;
}

Tss2Library::Tss2Library(Tss2Library&& other) noexcept
    : handles_(std::exchange(other.handles_, {})), api_(std::exchange(other.api_, {})) {}

Tss2Library& Tss2Library::operator=(Tss2Library&& other) noexcept {
  if (this != &other) {
    close();
    handles_ = std::exchange(other.handles_, {});
    api_ = std::exchange(other.api_, {});
  }
  return *this;
}

Tss2Library::~Tss2Library() {
  close();
}

void Tss2Library::close() noexcept {
  // Reverse order of opening; the dynamic linker unmaps each one (and libtss2-sys, which esys
  // pulled in) when its last reference goes.
  for (auto it = handles_.rbegin(); it != handles_.rend(); ++it) {
    if (*it != nullptr)
      ::dlclose(*it);
    *it = nullptr;
  }
  api_ = {};
}

}  // namespace lab::agent::keystore
