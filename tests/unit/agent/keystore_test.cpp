// The data key sealed by a real swtpm: seal/unseal, another TPM, a PCR change, file mode and
// the refusal to run without a TPM unless file mode is chosen; tpm2-tss loaded only while the
// TPM is in use.
#include "agent/keystore/keystore.hpp"

#include "agent/keystore/tpm.hpp"
#include "agent/keystore/tss2_library.hpp"
#include "shared/crypto/encoding.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/unit/agent/swtpm.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

namespace {

using namespace lab::agent::keystore;
namespace crypto = lab::shared::crypto;
using lab::tests::Swtpm;
using lab::tests::TempDir;

Options make_options(const std::filesystem::path& dir, Protection protection, std::string tcti,
                     std::vector<std::uint32_t> pcrs = {}) {
  Options o;
  o.state_dir = dir;
  o.protection = protection;
  o.tcti = std::move(tcti);
  o.pcrs = std::move(pcrs);
  return o;
}

// True when a shared object whose file name contains `name` is mapped into this process.
bool mapped(std::string_view name) {
  return lab::tests::read_file("/proc/self/maps").find(name) != std::string::npos;
}

class KeystoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ::setenv("TSS2_LOG", "all+none", 1);  // NOLINT(concurrency-mt-unsafe): no thread runs yet
  }
  void SetUp() override { LAB_REQUIRE_PROGRAM("swtpm"); }

  Options tpm_options(const Swtpm& tpm, std::vector<std::uint32_t> pcrs = {}) const {
    return make_options(dir_.path(), Protection::tpm, tpm.tcti(), std::move(pcrs));
  }
  TempDir dir_{"lab-keystore"};
};

TEST(TpmBlob, SerializeParseRoundTripAndRejectsDamage) {
  SealedBlob blob{{1, 2, 3}, {4, 5}, {7, 16}, {crypto::Bytes(32, 0xA7), crypto::Bytes(32, 0x16)}};
  auto bytes = serialize(blob);
  auto back = parse_blob(bytes);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->public_area, blob.public_area);
  EXPECT_EQ(back->private_area, blob.private_area);
  EXPECT_EQ(back->pcrs, blob.pcrs);
  EXPECT_EQ(back->pcr_values, blob.pcr_values);
  // Version 1 (no recorded values) still reads.
  crypto::Bytes v1{'L', 'A', 'B', 'K', 1, 2, 7, 16, 0, 3, 1, 2, 3, 0, 2, 4, 5};
  auto old = parse_blob(v1);
  ASSERT_TRUE(old) << old.error().message();
  EXPECT_EQ(old->pcrs, blob.pcrs);
  EXPECT_TRUE(old->pcr_values.empty());
  EXPECT_EQ(old->private_area, blob.private_area);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(parse_blob(crypto::ByteView(bytes.data(), n))) << n;
  }
  bytes.push_back(0);
  EXPECT_FALSE(parse_blob(bytes));
  EXPECT_EQ(describe_pcrs({7, 16}), "PCRs 7, 16");
}

TEST(Tss2Library, LoadsForItsLifetimeOnly) {
  ASSERT_FALSE(mapped("libtss2")) << "this test binary must not link tpm2-tss";
  {
    auto lib = Tss2Library::load();
    ASSERT_TRUE(lib) << lib.error().message();
    EXPECT_TRUE(mapped("libtss2-esys.so"));
    EXPECT_TRUE(mapped("libtss2-sys.so"));  // esys's own dependency
    EXPECT_NE(std::string_view(lib->api().rc_decode(TPM2_RC_INTEGRITY)).find("integrity"),
              std::string_view::npos);
    Tss2Library moved = std::move(*lib);
    EXPECT_NE(moved.api().esys_initialize, nullptr);
  }
  EXPECT_FALSE(mapped("libtss2"));
}

TEST(Tss2Library, AMissingLibraryIsAClearErrorAndLeavesNothingLoaded) {
  Tss2Sonames names;
  names.mu = "libtss2-mu-absent.so.0";
  auto lib = Tss2Library::load(names);
  ASSERT_FALSE(lib);
  EXPECT_EQ(lib.error(), KeystoreError::tss2_missing);
  const std::string message = lib.error().message();
  EXPECT_NE(message.find("libtss2-mu-absent.so.0"), std::string::npos) << message;
  EXPECT_NE(message.find("cannot open shared object file"), std::string::npos) << message;
  EXPECT_NE(message.find("key_protection = \"file\""), std::string::npos) << message;
  EXPECT_FALSE(mapped("libtss2"));
}

TEST(Tss2Library, ALibraryWithoutTheFunctionsIsAClearError) {
  Tss2Sonames names;
  names.rc = "libc.so.6";
  auto lib = Tss2Library::load(names);
  ASSERT_FALSE(lib);
  EXPECT_EQ(lib.error(), KeystoreError::tss2_missing);
  EXPECT_NE(lib.error().message().find("libc.so.6 has no Tss2_RC_Decode"), std::string::npos)
      << lib.error().message();
  EXPECT_FALSE(mapped("libtss2"));
}

TEST_F(KeystoreTest, SealsThenUnsealsTheSameKeyAcrossRestarts) {
  Swtpm tpm;
  auto first = DataKey::open(tpm_options(tpm));
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(first->status(), "tpm");
  EXPECT_EQ(first->protection_fact(), "tpm");
  EXPECT_EQ(protection_fact(tpm_options(tpm)), "tpm");
  auto wrapped = first->wrap(crypto::as_bytes("secret"), "row:1").value();
  ASSERT_TRUE(std::filesystem::exists(dir_ / kSealedKeyFile));
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / kSealedKeyFile).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);

  tpm.restart();  // a reboot: same TPM, fresh process
  auto second = DataKey::open(tpm_options(tpm));
  ASSERT_TRUE(second) << second.error().message();
  auto plain = second->unwrap(wrapped, "row:1");
  ASSERT_TRUE(plain) << plain.error().message();
  EXPECT_EQ(crypto::as_chars(*plain), "secret");
  // Sealing and unsealing done, none of tpm2-tss (nor the TCTI module it opened) stays mapped.
  EXPECT_FALSE(mapped("libtss2"));
  // The AAD binds the row: the same bytes under another name do not open.
  EXPECT_EQ(second->unwrap(wrapped, "row:2").error(), KeystoreError::unwrap_failed);
}

TEST_F(KeystoreTest, ManySealsAndUnsealsLeakNoTpmHandles) {
  // swtpm has three transient slots and no resource manager: one leaked handle per call
  // would fail the fourth call with 0x902.
  Swtpm tpm;
  for (int i = 0; i < 6; ++i) {
    auto blob = tpm_seal(tpm.tcti(), crypto::as_bytes("0123456789abcdef"),
                         i % 2 ? std::vector<std::uint32_t>{16} : std::vector<std::uint32_t>{});
    ASSERT_TRUE(blob) << i << ": " << blob.error().message();
    auto plain = tpm_unseal(tpm.tcti(), *blob);
    ASSERT_TRUE(plain) << i << ": " << plain.error().message();
    EXPECT_EQ(crypto::as_chars(*plain), "0123456789abcdef");
  }
}

TEST_F(KeystoreTest, ACopyOnAnotherTpmOpensNothing) {
  Swtpm tpm;
  ASSERT_TRUE(DataKey::open(tpm_options(tpm)));
  TempDir copy("lab-keystore-copy");
  std::filesystem::copy(dir_.path(), copy.path(), std::filesystem::copy_options::recursive);
  const std::string before = lab::tests::read_file(copy / kSealedKeyFile);

  Swtpm other;  // a fresh state directory: another machine
  auto r = DataKey::open(make_options(copy.path(), Protection::tpm, other.tcti()));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), KeystoreError::other_tpm);
  EXPECT_NE(r.error().message().find("sealed by another TPM"), std::string::npos)
      << r.error().message();
  // The failure leaves the sealed key alone: no new key replaces the old one.
  EXPECT_EQ(lab::tests::read_file(copy / kSealedKeyFile), before);
}

TEST_F(KeystoreTest, PcrExtendedAfterSealingBlocksUnseal) {
  LAB_REQUIRE_PROGRAM("tpm2_pcrextend");
  Swtpm tpm;
  ASSERT_TRUE(DataKey::open(tpm_options(tpm, {7, 16})));
  auto unchanged = DataKey::open(tpm_options(tpm, {7, 16}));
  ASSERT_TRUE(unchanged) << "unchanged PCRs must unseal";
  EXPECT_EQ(unchanged->protection_fact(), "tpm+pcr");
  EXPECT_EQ(protection_fact(tpm_options(tpm, {7, 16})), "tpm+pcr");
  // What the key was sealed under counts, not what the configuration says now.
  EXPECT_EQ(DataKey::open(tpm_options(tpm))->protection_fact(), "tpm+pcr");
  const std::string before = lab::tests::read_file(dir_ / kSealedKeyFile);

  ASSERT_TRUE(tpm.extend_pcr(16));
  auto r = DataKey::open(tpm_options(tpm, {7, 16}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), KeystoreError::pcr_policy_failed);
  EXPECT_NE(r.error().message().find("PCR policy failed (PCRs 7, 16)"), std::string::npos)
      << r.error().message();
  // It names the PCR that moved, not the one that did not.
  EXPECT_NE(r.error().message().find("PCR 16 changed since the data key was sealed"),
            std::string::npos)
      << r.error().message();
  EXPECT_EQ(r.error().message().find("PCR 7 was"), std::string::npos) << r.error().message();
  EXPECT_EQ(lab::tests::read_file(dir_ / kSealedKeyFile), before);

  ASSERT_TRUE(tpm.extend_pcr(7));
  r = DataKey::open(tpm_options(tpm, {7, 16}));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("PCRs 7, 16 changed since the data key was sealed"),
            std::string::npos)
      << r.error().message();

  tpm.restart();  // PCRs back to their reset values: the same blob unseals again
  EXPECT_TRUE(DataKey::open(tpm_options(tpm, {7, 16})));

  // A blob without the record (sealed before it existed): the failure says so.
  auto blob = parse_blob(crypto::as_bytes(lab::tests::read_file(dir_ / kSealedKeyFile))).value();
  ASSERT_EQ(blob.pcr_values.size(), 2U);
  blob.pcr_values.clear();
  ASSERT_TRUE(tpm.extend_pcr(16));
  auto unknown = tpm_unseal(tpm.tcti(), blob);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error(), KeystoreError::pcr_policy_failed);
  EXPECT_NE(unknown.error().message().find("values at seal time are unknown"), std::string::npos)
      << unknown.error().message();
  // A damaged record misleads nobody into a crash: still the policy error.
  blob = parse_blob(crypto::as_bytes(lab::tests::read_file(dir_ / kSealedKeyFile))).value();
  blob.pcr_values[0][0] ^= 0xFF;
  blob.pcr_values[1][0] ^= 0xFF;
  auto damaged = tpm_unseal(tpm.tcti(), blob);
  ASSERT_FALSE(damaged);
  EXPECT_EQ(damaged.error(), KeystoreError::pcr_policy_failed) << damaged.error().message();
}

TEST_F(KeystoreTest, FileModeKeepsTheKeyIn0600AndReportsDegraded) {
  const Options o = make_options(dir_.path(), Protection::file, "");
  auto first = DataKey::open(o);
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(first->status(), "degraded");
  EXPECT_EQ(first->protection_fact(), "file");
  EXPECT_EQ(protection_fact(o), "file");
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / kPlainKeyFile).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  EXPECT_EQ(st.st_size, 32);
  auto wrapped = first->wrap(crypto::as_bytes("x"), "a").value();
  auto second = DataKey::open(o);
  ASSERT_TRUE(second);
  EXPECT_TRUE(second->unwrap(wrapped, "a"));

  ::chmod((dir_ / kPlainKeyFile).c_str(), 0644);
  auto loose = DataKey::open(o);
  ASSERT_FALSE(loose);
  EXPECT_EQ(loose.error(), KeystoreError::key_file);
}

TEST_F(KeystoreTest, NoTpmWithoutExplicitFileModeIsRefused) {
  const Options o = make_options(dir_.path(), Protection::tpm,
                                 "swtpm:path=" + (dir_ / "no-such-tpm.sock").string());
  auto r = DataKey::open(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), KeystoreError::no_tpm);
  EXPECT_NE(r.error().message().find("key_protection = \"file\""), std::string::npos)
      << r.error().message();
  EXPECT_FALSE(std::filesystem::exists(dir_ / kSealedKeyFile));
  EXPECT_FALSE(std::filesystem::exists(dir_ / kPlainKeyFile));

  auto device =
      DataKey::open(make_options(dir_.path(), Protection::tpm, "device:/dev/no-such-tpm"));
  ASSERT_FALSE(device);
  EXPECT_EQ(device.error(), KeystoreError::no_tpm);

  auto empty = DataKey::open(make_options(dir_.path(), Protection::tpm, ""));
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error(), KeystoreError::bad_tcti);
}

TEST_F(KeystoreTest, ModesDoNotMix) {
  ASSERT_TRUE(DataKey::open(make_options(dir_.path(), Protection::file, "")));
  Swtpm tpm;
  auto r = DataKey::open(tpm_options(tpm));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), KeystoreError::mode_mismatch);
}

}  // namespace
