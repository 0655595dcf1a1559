#include "agent/keystore/tpm.hpp"

#include "agent/keystore/tss2_library.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>

namespace lab::agent::keystore {
namespace {

constexpr std::uint8_t kBlobVersion = 2;
constexpr std::size_t kPcrValueSize = 32;  // SHA-256
constexpr std::uint32_t kMaxPcr = 23;

// The TPM is one device with a handful of slots: one caller at a time in this process.
std::mutex& tpm_mutex() {
  static std::mutex m;
  return m;
}

// Tss2_RC_Decode returns a buffer inside libtss2-rc: copied here, before the library goes.
std::string rc_text(const Tss2Api& tss, TSS2_RC rc) {
  return fmt::format("0x{:X} {}", rc, tss.rc_decode(rc));
}

// The response code without the parameter/handle/session number, so 0x1DF (integrity on
// parameter 1) compares equal to TPM2_RC_INTEGRITY.
TSS2_RC base_rc(TSS2_RC rc) {
  if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER)
    return rc;
  if ((rc & TPM2_RC_FMT1) != 0)
    return rc & (TPM2_RC_FMT1 | 0x3FU);
  return rc;
}

Error tpm_error(const Tss2Api& tss, KeystoreError code, std::string_view what, TSS2_RC rc) {
  return {code, fmt::format("{}: {}", what, rc_text(tss, rc))};
}

// Esys_Free on scope exit for ESAPI's out-parameters.
template <class T>
struct Freed {
  const Tss2Api& tss;
  T* p = nullptr;
  explicit Freed(const Tss2Api& t) noexcept : tss(t) {}
  Freed(const Freed&) = delete;
  Freed& operator=(const Freed&) = delete;
  ~Freed() { tss.esys_free(p); }
};

// A TPM without a resource manager (swtpm; /dev/tpm0) is one device shared by every process:
// callers in other labd processes (`labd status` while the agent starts) take this lock.
int lock_tpm(std::string_view conf) {
  constexpr std::string_view kSwtpm = "swtpm:path=";
  if (!conf.starts_with(kSwtpm))
    return -1;
  std::string path(conf.substr(kSwtpm.size()));
  if (const auto comma = path.find(','); comma != std::string::npos)
    path.resize(comma);
  path += ".lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0)
    ::flock(fd, LOCK_EX);
  return fd;
}

// FlushContext of a raw TPM handle, straight through the TCTI (ESYS has no TR for handles
// another process created).
void flush_raw(TSS2_TCTI_CONTEXT* tcti, TPM2_HANDLE h) {
  const std::array<std::uint8_t, 14> cmd = {0x80,
                                            0x01,
                                            0,
                                            0,
                                            0,
                                            14,
                                            0x00,
                                            0x00,
                                            0x01,
                                            0x65,
                                            static_cast<std::uint8_t>(h >> 24),
                                            static_cast<std::uint8_t>(h >> 16),
                                            static_cast<std::uint8_t>(h >> 8),
                                            static_cast<std::uint8_t>(h)};
  std::array<std::uint8_t, 64> resp{};
  size_t len = resp.size();
// tss2_tcti.h's dispatch macros cast in C style.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
  if (Tss2_Tcti_Transmit(tcti, cmd.size(), cmd.data()) != TSS2_RC_SUCCESS)
    return;
  Tss2_Tcti_Receive(tcti, &len, resp.data(), TSS2_TCTI_TIMEOUT_BLOCK);
#pragma GCC diagnostic pop
}

// A client killed in the middle of a call leaves its transient objects and sessions loaded in
// a TPM without a resource manager, and after three of them every load fails (0x902). Under
// the lock nobody else is mid-call, so whatever is loaded is such a leftover.
void flush_leftovers(const Tss2Api& tss, ESYS_CONTEXT* esys, TSS2_TCTI_CONTEXT* tcti) {
  for (const TPM2_HANDLE first :
       {TPM2_TRANSIENT_FIRST, TPM2_HMAC_SESSION_FIRST, TPM2_POLICY_SESSION_FIRST}) {
    TPMI_YES_NO more = TPM2_NO;
    Freed<TPMS_CAPABILITY_DATA> cap(tss);
    if (tss.esys_get_capability(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES,
                                first, 64, &more, &cap.p) != TSS2_RC_SUCCESS) {
      continue;
    }
    for (UINT32 i = 0; i < cap.p->data.handles.count; ++i)
      flush_raw(tcti, cap.p->data.handles.handle[i]);
  }
}

// Owns the TCTI and ESYS contexts of one call; finalized before the library is unloaded (the
// caller's Tss2Library outlives it).
class Context {
 public:
  explicit Context(const Tss2Api& tss) noexcept : tss_(tss) {}
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  ~Context() {
    if (esys_ != nullptr)
      tss_.esys_finalize(&esys_);
    if (tcti_ != nullptr)
      tss_.tctildr_finalize(&tcti_);
    if (lock_fd_ >= 0)
      ::close(lock_fd_);
  }

  Result<void> open(std::string_view conf) {
    if (conf.empty()) {
      return Error(KeystoreError::bad_tcti,
                   "the TPM TCTI is empty; name the device explicitly (device:/dev/tpmrm0)");
    }
    const std::string c(conf);
    lock_fd_ = lock_tpm(conf);
    if (TSS2_RC rc = tss_.tctildr_initialize(c.c_str(), &tcti_); rc != TSS2_RC_SUCCESS) {
      tcti_ = nullptr;
      return Error(KeystoreError::no_tpm,
                   fmt::format("no TPM reachable through TCTI '{}' ({})", conf, rc_text(tss_, rc)));
    }
    if (TSS2_RC rc = tss_.esys_initialize(&esys_, tcti_, nullptr); rc != TSS2_RC_SUCCESS) {
      esys_ = nullptr;
      return tpm_error(tss_, KeystoreError::tpm_startup, "Esys_Initialize", rc);
    }
    // 0x100 (TPM2_RC_INITIALIZE): already started, by firmware or by the resource manager.
    if (TSS2_RC rc = tss_.esys_startup(esys_, TPM2_SU_CLEAR);
        rc != TSS2_RC_SUCCESS && rc != TPM2_RC_INITIALIZE) {
      return tpm_error(tss_, KeystoreError::tpm_startup, "TPM2_Startup", rc);
    }
    if (lock_fd_ >= 0)
      flush_leftovers(tss_, esys_, tcti_);
    return {};
  }

  [[nodiscard]] ESYS_CONTEXT* esys() const noexcept { return esys_; }

 private:
  const Tss2Api& tss_;
  TSS2_TCTI_CONTEXT* tcti_ = nullptr;
  ESYS_CONTEXT* esys_ = nullptr;
  int lock_fd_ = -1;
};

// Flushes a transient object or session when the scope ends, whatever path leaves it.
class Handle {
 public:
  Handle(const Tss2Api& tss, ESYS_CONTEXT* ctx) noexcept : tss_(tss), ctx_(ctx) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() {
    if (tr_ != ESYS_TR_NONE)
      tss_.esys_flush_context(ctx_, tr_);
  }
  ESYS_TR* out() noexcept { return &tr_; }
  [[nodiscard]] ESYS_TR get() const noexcept { return tr_; }

 private:
  const Tss2Api& tss_;
  ESYS_CONTEXT* ctx_;
  ESYS_TR tr_ = ESYS_TR_NONE;
};

TPML_PCR_SELECTION pcr_selection(const std::vector<std::uint32_t>& pcrs) {
  TPML_PCR_SELECTION sel{};
  sel.count = 1;
  sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
  sel.pcrSelections[0].sizeofSelect = 3;
  for (std::uint32_t pcr : pcrs)
    sel.pcrSelections[0].pcrSelect[pcr / 8] |= static_cast<std::uint8_t>(1U << (pcr % 8));
  return sel;
}

Result<void> check_pcrs(const std::vector<std::uint32_t>& pcrs) {
  for (std::uint32_t pcr : pcrs) {
    if (pcr > kMaxPcr)
      return Error(KeystoreError::bad_pcr, fmt::format("PCR {} is outside 0..23", pcr));
  }
  return {};
}

// The storage primary: ECC P-256 (fast on every TPM), deterministic for a given TPM and
// template, so nothing needs to be persisted in the TPM.
Result<void> create_primary(const Tss2Api& tss, ESYS_CONTEXT* ctx, Handle& primary) {
  TPM2B_SENSITIVE_CREATE in_sensitive{};
  TPM2B_PUBLIC in_public{};
  TPMT_PUBLIC& area = in_public.publicArea;
  area.type = TPM2_ALG_ECC;
  area.nameAlg = TPM2_ALG_SHA256;
  area.objectAttributes = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT | TPMA_OBJECT_FIXEDTPM |
                          TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                          TPMA_OBJECT_USERWITHAUTH;
  TPMS_ECC_PARMS& ecc = area.parameters.eccDetail;
  ecc.symmetric.algorithm = TPM2_ALG_AES;
  ecc.symmetric.keyBits.aes = 128;
  ecc.symmetric.mode.aes = TPM2_ALG_CFB;
  ecc.scheme.scheme = TPM2_ALG_NULL;
  ecc.curveID = TPM2_ECC_NIST_P256;
  ecc.kdf.scheme = TPM2_ALG_NULL;
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION creation_pcr{};
  Freed<TPM2B_PUBLIC> out_public(tss);
  Freed<TPM2B_CREATION_DATA> creation_data(tss);
  Freed<TPM2B_DIGEST> creation_hash(tss);
  Freed<TPMT_TK_CREATION> creation_ticket(tss);
  TSS2_RC rc = tss.esys_create_primary(ctx, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                       ESYS_TR_NONE, &in_sensitive, &in_public, &outside,
                                       &creation_pcr, primary.out(), &out_public.p,
                                       &creation_data.p, &creation_hash.p, &creation_ticket.p);
  if (rc != TSS2_RC_SUCCESS)
    return tpm_error(tss, KeystoreError::create_primary, "create storage primary key", rc);
  return {};
}

// An HMAC or policy session salted with the primary key and AES-128-CFB parameter encryption.
Result<void> start_salted_session(const Tss2Api& tss, ESYS_CONTEXT* ctx, ESYS_TR tpm_key,
                                  TPM2_SE type, Handle& session) {
  TPMT_SYM_DEF symmetric{};
  symmetric.algorithm = TPM2_ALG_AES;
  symmetric.keyBits.aes = 128;
  symmetric.mode.aes = TPM2_ALG_CFB;
  TSS2_RC rc = tss.esys_start_auth_session(ctx, tpm_key, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                           ESYS_TR_NONE, nullptr, type, &symmetric, TPM2_ALG_SHA256,
                                           session.out());
  if (rc != TSS2_RC_SUCCESS)
    return tpm_error(tss, KeystoreError::session, "start salted session", rc);
  return {};
}

Result<TPM2B_DIGEST> policy_digest(const Tss2Api& tss, ESYS_CONTEXT* ctx,
                                   const std::vector<std::uint32_t>& pcrs) {
  Handle trial(tss, ctx);
  TPMT_SYM_DEF symmetric{};
  symmetric.algorithm = TPM2_ALG_NULL;
  TSS2_RC rc = tss.esys_start_auth_session(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                           ESYS_TR_NONE, ESYS_TR_NONE, nullptr, TPM2_SE_TRIAL,
                                           &symmetric, TPM2_ALG_SHA256, trial.out());
  if (rc != TSS2_RC_SUCCESS)
    return tpm_error(tss, KeystoreError::policy, "start trial session", rc);
  const TPML_PCR_SELECTION sel = pcr_selection(pcrs);
  TPM2B_DIGEST current{};  // empty: the TPM uses the PCRs' current values
  rc = tss.esys_policy_pcr(ctx, trial.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &current,
                           &sel);
  if (rc != TSS2_RC_SUCCESS)
    return tpm_error(tss, KeystoreError::policy, "PolicyPCR (trial)", rc);
  Freed<TPM2B_DIGEST> digest(tss);
  rc = tss.esys_policy_get_digest(ctx, trial.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                  &digest.p);
  if (rc != TSS2_RC_SUCCESS)
    return tpm_error(tss, KeystoreError::policy, "PolicyGetDigest", rc);
  return *digest.p;
}

template <class T>
Result<shared::crypto::Bytes> marshal(const Tss2Api& tss, const T& value,
                                      TSS2_RC (*fn)(const T*, std::uint8_t*, size_t, size_t*)) {
  shared::crypto::Bytes out(sizeof(T));
  size_t offset = 0;
  if (TSS2_RC rc = fn(&value, out.data(), out.size(), &offset); rc != TSS2_RC_SUCCESS)
    return tpm_error(tss, KeystoreError::marshal, "marshal sealed object", rc);
  out.resize(offset);
  return out;
}

}  // namespace

const boost::system::error_category& keystore_category() noexcept {
  static const ErrorCategory<KeystoreError> kCategory(
      "lab.keystore", [](KeystoreError e) noexcept -> const char* {
        switch (e) {
          case KeystoreError::no_tpm:
            return "no TPM";
          case KeystoreError::bad_tcti:
            return "invalid TCTI";
          case KeystoreError::tpm_startup:
            return "TPM start-up failed";
          case KeystoreError::create_primary:
            return "TPM primary key creation failed";
          case KeystoreError::policy:
            return "TPM PCR policy creation failed";
          case KeystoreError::seal_failed:
            return "TPM seal failed";
          case KeystoreError::marshal:
            return "TPM object (un)marshalling failed";
          case KeystoreError::load_failed:
            return "TPM load failed";
          case KeystoreError::session:
            return "TPM session failed";
          case KeystoreError::unseal_failed:
            return "TPM unseal failed";
          case KeystoreError::other_tpm:
            return "sealed by another TPM";
          case KeystoreError::pcr_policy_failed:
            return "PCR policy failed";
          case KeystoreError::bad_blob:
            return "sealed key file damaged";
          case KeystoreError::bad_pcr:
            return "invalid PCR index";
          case KeystoreError::key_file:
            return "data key file unusable";
          case KeystoreError::mode_mismatch:
            return "key protection mode mismatch";
          case KeystoreError::io:
            return "key file I/O failed";
          case KeystoreError::wrap_failed:
            return "encryption under the data key failed";
          case KeystoreError::unwrap_failed:
            return "decryption under the data key failed";
          case KeystoreError::tss2_missing:
            return "TPM library unavailable";
        }
        return "keystore error";
      });
  return kCategory;
}

std::string describe_pcrs(const std::vector<std::uint32_t>& pcrs) {
  return fmt::format("PCR{} {}", pcrs.size() == 1 ? "" : "s", fmt::join(pcrs, ", "));
}

shared::crypto::Bytes serialize(const SealedBlob& blob) {
  shared::crypto::Bytes out{'L', 'A',          'B',
                            'K', kBlobVersion, static_cast<std::uint8_t>(blob.pcrs.size())};
  for (std::uint32_t pcr : blob.pcrs)
    out.push_back(static_cast<std::uint8_t>(pcr));
  const bool values = blob.pcr_values.size() == blob.pcrs.size() &&
                      std::all_of(blob.pcr_values.begin(), blob.pcr_values.end(),
                                  [](const auto& v) { return v.size() == kPcrValueSize; });
  out.push_back(values ? static_cast<std::uint8_t>(blob.pcrs.size()) : 0);
  if (values) {
    for (const auto& v : blob.pcr_values)
      out.insert(out.end(), v.begin(), v.end());
  }
  for (const auto* part : {&blob.public_area, &blob.private_area}) {
    out.push_back(static_cast<std::uint8_t>(part->size() >> 8));
    out.push_back(static_cast<std::uint8_t>(part->size() & 0xFF));
    out.insert(out.end(), part->begin(), part->end());
  }
  return out;
}

Result<SealedBlob> parse_blob(shared::crypto::ByteView in) {
  auto bad = [](std::string_view why) {
    return Error(KeystoreError::bad_blob, fmt::format("sealed data key: {}", why));
  };
  if (in.size() < 6 || std::memcmp(in.data(), "LABK", 4) != 0)
    return bad("not a sealed key file");
  const std::uint8_t version = in[4];
  if (version != 1 && version != kBlobVersion)
    return bad(fmt::format("unsupported version {}", version));
  SealedBlob blob;
  std::size_t pos = 6;
  const std::size_t count = in[5];
  if (in.size() < pos + count)
    return bad("truncated");
  for (std::size_t i = 0; i < count; ++i) {
    if (in[pos] > kMaxPcr)
      return bad("PCR index out of range");
    blob.pcrs.push_back(in[pos++]);
  }
  if (version >= 2) {
    if (in.size() < pos + 1)
      return bad("truncated");
    const std::size_t values = in[pos++];
    if (values != 0 && values != count)
      return bad("PCR value count does not match the PCRs");
    if (in.size() < pos + values * kPcrValueSize)
      return bad("truncated");
    for (std::size_t i = 0; i < values; ++i) {
      const auto* at = in.data() + pos;
      blob.pcr_values.emplace_back(at, at + kPcrValueSize);
      pos += kPcrValueSize;
    }
  }
  for (auto* part : {&blob.public_area, &blob.private_area}) {
    if (in.size() < pos + 2)
      return bad("truncated");
    const std::size_t len = (std::size_t{in[pos]} << 8) | in[pos + 1];
    pos += 2;
    if (in.size() < pos + len)
      return bad("truncated");
    part->assign(in.begin() + static_cast<std::ptrdiff_t>(pos),
                 in.begin() + static_cast<std::ptrdiff_t>(pos + len));
    pos += len;
  }
  if (pos != in.size())
    return bad("trailing bytes");
  return blob;
}

namespace {

// The SHA-256 values of `pcrs`, in order, one PCR_Read each (a read returns at most 8).
Result<std::vector<shared::crypto::Bytes>> read_pcrs(const Tss2Api& tss, ESYS_CONTEXT* esys,
                                                     const std::vector<std::uint32_t>& pcrs) {
  std::vector<shared::crypto::Bytes> out;
  for (const std::uint32_t pcr : pcrs) {
    const TPML_PCR_SELECTION sel = pcr_selection({pcr});
    UINT32 counter = 0;
    Freed<TPML_PCR_SELECTION> selected(tss);
    Freed<TPML_DIGEST> values(tss);
    const TSS2_RC rc = tss.esys_pcr_read(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel,
                                         &counter, &selected.p, &values.p);
    if (rc != TSS2_RC_SUCCESS)
      return tpm_error(tss, KeystoreError::policy, fmt::format("PCR_Read of PCR {}", pcr), rc);
    if (values.p == nullptr || values.p->count != 1 || values.p->digests[0].size != kPcrValueSize) {
      return Error(
          KeystoreError::policy,
          fmt::format("PCR_Read of PCR {}: no SHA-256 value (is the bank allocated?)", pcr));
    }
    const auto& d = values.p->digests[0];
    out.emplace_back(d.buffer, d.buffer + d.size);
  }
  return out;
}

std::string short_hex(const shared::crypto::Bytes& v) {
  std::string out;
  for (std::size_t i = 0; i < v.size() && i < 8; ++i)
    out += fmt::format("{:02x}", v[i]);
  return out + "…";
}

// Which PCRs differ now from their values at seal time, as a sentence.
std::string changed_pcrs(const Tss2Api& tss, ESYS_CONTEXT* esys, const SealedBlob& blob) {
  if (blob.pcr_values.size() != blob.pcrs.size())
    return "the PCR values at seal time are unknown (the key was sealed by an older labd)";
  auto now = read_pcrs(tss, esys, blob.pcrs);
  if (!now)
    return "the PCRs could not be read to tell which changed: " + now.error().message();
  std::vector<std::uint32_t> changed;
  std::vector<std::string> detail;
  for (std::size_t i = 0; i < blob.pcrs.size(); ++i) {
    if ((*now)[i] != blob.pcr_values[i]) {
      changed.push_back(blob.pcrs[i]);
      detail.push_back(fmt::format("PCR {} was {} at sealing, is {} now", blob.pcrs[i],
                                   short_hex(blob.pcr_values[i]), short_hex((*now)[i])));
    }
  }
  if (changed.empty())
    return "no PCR differs from its value at seal time (the sealed object or policy is damaged)";
  return fmt::format("{} changed since the data key was sealed ({})", describe_pcrs(changed),
                     fmt::join(detail, "; "));
}

}  // namespace

Result<SealedBlob> tpm_seal(std::string_view tcti, shared::crypto::ByteView secret,
                            const std::vector<std::uint32_t>& pcrs) {
  LAB_TRY(check_pcrs(pcrs));
  if (secret.empty() || secret.size() > TPM2_MAX_SYM_DATA) {
    return Error(KeystoreError::seal_failed,
                 fmt::format("a sealed secret holds 1..{} bytes", TPM2_MAX_SYM_DATA));
  }
  const std::lock_guard lock(tpm_mutex());
  LAB_TRY_ASSIGN(const Tss2Library lib, Tss2Library::load());
  const Tss2Api& tss = lib.api();
  Context ctx(tss);
  LAB_TRY(ctx.open(tcti));
  ESYS_CONTEXT* esys = ctx.esys();
  Handle primary(tss, esys);
  LAB_TRY(create_primary(tss, esys, primary));

  TPM2B_PUBLIC in_public{};
  TPMT_PUBLIC& area = in_public.publicArea;
  area.type = TPM2_ALG_KEYEDHASH;
  area.nameAlg = TPM2_ALG_SHA256;
  area.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT;
  area.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
  if (pcrs.empty()) {
    area.objectAttributes |= TPMA_OBJECT_USERWITHAUTH;
  } else {
    // Without USERWITHAUTH the (empty) password cannot bypass the policy.
    LAB_TRY_ASSIGN(area.authPolicy, policy_digest(tss, esys, pcrs));
  }
  TPM2B_SENSITIVE_CREATE in_sensitive{};
  in_sensitive.sensitive.data.size = static_cast<UINT16>(secret.size());
  std::memcpy(in_sensitive.sensitive.data.buffer, secret.data(), secret.size());

  // The secret travels to the TPM encrypted: a salted session with DECRYPT encrypts the first
  // command parameter (inSensitive).
  Handle session(tss, esys);
  auto wipe = [&] { shared::crypto::cleanse(&in_sensitive, sizeof in_sensitive); };
  if (auto r = start_salted_session(tss, esys, primary.get(), TPM2_SE_HMAC, session); !r) {
    wipe();
    return r.error();
  }
  tss.esys_trsess_set_attributes(esys, session.get(),
                                 TPMA_SESSION_DECRYPT | TPMA_SESSION_CONTINUESESSION, 0xFF);
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION creation_pcr{};
  Freed<TPM2B_PRIVATE> out_private(tss);
  Freed<TPM2B_PUBLIC> out_public(tss);
  Freed<TPM2B_CREATION_DATA> creation_data(tss);
  Freed<TPM2B_DIGEST> creation_hash(tss);
  Freed<TPMT_TK_CREATION> creation_ticket(tss);
  TSS2_RC rc =
      tss.esys_create(esys, primary.get(), ESYS_TR_PASSWORD, session.get(), ESYS_TR_NONE,
                      &in_sensitive, &in_public, &outside, &creation_pcr, &out_private.p,
                      &out_public.p, &creation_data.p, &creation_hash.p, &creation_ticket.p);
  wipe();
  if (rc != TSS2_RC_SUCCESS)
    return tpm_error(tss, KeystoreError::seal_failed, "create sealed object", rc);
  SealedBlob blob;
  blob.pcrs = pcrs;
  // Recorded so that a later policy failure can say which PCR moved.
  LAB_TRY_ASSIGN(blob.pcr_values, read_pcrs(tss, esys, pcrs));
  LAB_TRY_ASSIGN(blob.public_area, marshal(tss, *out_public.p, tss.mu_tpm2b_public_marshal));
  LAB_TRY_ASSIGN(blob.private_area, marshal(tss, *out_private.p, tss.mu_tpm2b_private_marshal));
  return blob;
}

Result<shared::crypto::SecretBytes> tpm_unseal(std::string_view tcti, const SealedBlob& blob) {
  LAB_TRY(check_pcrs(blob.pcrs));
  const std::lock_guard lock(tpm_mutex());
  LAB_TRY_ASSIGN(const Tss2Library lib, Tss2Library::load());
  const Tss2Api& tss = lib.api();
  TPM2B_PUBLIC in_public{};
  TPM2B_PRIVATE in_private{};
  size_t offset = 0;
  if (tss.mu_tpm2b_public_unmarshal(blob.public_area.data(), blob.public_area.size(), &offset,
                                    &in_public) != TSS2_RC_SUCCESS ||
      offset != blob.public_area.size()) {
    return Error(KeystoreError::bad_blob, "sealed data key: public area does not unmarshal");
  }
  offset = 0;
  if (tss.mu_tpm2b_private_unmarshal(blob.private_area.data(), blob.private_area.size(), &offset,
                                     &in_private) != TSS2_RC_SUCCESS ||
      offset != blob.private_area.size()) {
    return Error(KeystoreError::bad_blob, "sealed data key: private area does not unmarshal");
  }

  Context ctx(tss);
  LAB_TRY(ctx.open(tcti));
  ESYS_CONTEXT* esys = ctx.esys();
  Handle primary(tss, esys);
  LAB_TRY(create_primary(tss, esys, primary));

  Handle object(tss, esys);
  TSS2_RC rc = tss.esys_load(esys, primary.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                             &in_private, &in_public, object.out());
  if (rc != TSS2_RC_SUCCESS) {
    if (base_rc(rc) == TPM2_RC_INTEGRITY) {
      return Error(KeystoreError::other_tpm,
                   fmt::format("the data key was sealed by another TPM (or this TPM was "
                               "cleared): {}",
                               rc_text(tss, rc)));
    }
    return tpm_error(tss, KeystoreError::load_failed, "load sealed object", rc);
  }

  const bool policy = !blob.pcrs.empty();
  Handle session(tss, esys);
  LAB_TRY(start_salted_session(tss, esys, primary.get(), policy ? TPM2_SE_POLICY : TPM2_SE_HMAC,
                               session));
  // ENCRYPT: the response (the data key) is encrypted under the salted session key.
  tss.esys_trsess_set_attributes(esys, session.get(),
                                 TPMA_SESSION_ENCRYPT | TPMA_SESSION_CONTINUESESSION, 0xFF);
  if (policy) {
    const TPML_PCR_SELECTION sel = pcr_selection(blob.pcrs);
    TPM2B_DIGEST current{};
    rc = tss.esys_policy_pcr(esys, session.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                             &current, &sel);
    if (rc != TSS2_RC_SUCCESS)
      return tpm_error(tss, KeystoreError::policy, "PolicyPCR", rc);
  }
  Freed<TPM2B_SENSITIVE_DATA> out(tss);
  rc = tss.esys_unseal(esys, object.get(), session.get(), ESYS_TR_NONE, ESYS_TR_NONE, &out.p);
  if (rc != TSS2_RC_SUCCESS) {
    if (base_rc(rc) == TPM2_RC_POLICY_FAIL) {
      return Error(KeystoreError::pcr_policy_failed,
                   fmt::format("PCR policy failed ({}): {} ({})", describe_pcrs(blob.pcrs),
                               changed_pcrs(tss, esys, blob), rc_text(tss, rc)));
    }
    if (base_rc(rc) == TPM2_RC_INTEGRITY) {
      return Error(KeystoreError::other_tpm,
                   fmt::format("the data key was sealed by another TPM: {}", rc_text(tss, rc)));
    }
    return tpm_error(tss, KeystoreError::unseal_failed, "unseal", rc);
  }
  shared::crypto::SecretBytes secret(out.p->buffer, out.p->buffer + out.p->size);
  shared::crypto::cleanse(out.p->buffer, out.p->size);
  return secret;
}

bool tpm_available(std::string_view tcti) {
  const std::lock_guard lock(tpm_mutex());
  auto lib = Tss2Library::load();
  if (!lib)
    return false;
  Context ctx(lib->api());
  return static_cast<bool>(ctx.open(tcti));
}

}  // namespace lab::agent::keystore
