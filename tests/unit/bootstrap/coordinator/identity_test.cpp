#include "shared/crypto/hash.hpp"
#include "tests/support/process.hpp"
#include "tests/unit/bootstrap/coordinator/fixture.hpp"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

namespace lab::bootstrap::coordinator::testing {
namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

unsigned mode_of(const std::filesystem::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 0777U;
}

TEST_F(CoordinatorTest, FirstStartCreatesPrivateFilesWithMode0600) {
  const auto data = dir_.path() / "data";
  for (const char* name :
       {"ca.key", "server.key", "bundle.key", "secrets.key", "operator.token", "coordinator.db"}) {
    ASSERT_TRUE(std::filesystem::exists(data / name)) << name;
    EXPECT_EQ(mode_of(data / name), 0600U) << name;
  }
  EXPECT_TRUE(std::filesystem::exists(data / "ca.pem"));
}

TEST_F(CoordinatorTest, ServerCertificateIsIssuedByTheCa) {
  auto chain = cr::Certificate::chain_from_pem(c().server_chain_pem());
  ASSERT_TRUE(chain) << chain.error().message();
  ASSERT_EQ(chain->size(), 2U);
  auto ca = cr::Certificate::from_pem(c().ca_pem()).value();
  EXPECT_TRUE(ca.is_ca());
  EXPECT_TRUE(cr::verify_certificate((*chain)[0], ca, clock_.now()));
  EXPECT_EQ((*chain)[0].common_name(), "127.0.0.1");
  EXPECT_EQ(c().ca_pin(), cr::spki_pin(ca.public_key_der()));
  auto key = cr::EcPrivateKey::from_pem(c().server_key_pem());
  ASSERT_TRUE(key);
  EXPECT_EQ(key->public_key_der(), (*chain)[0].public_key_der());
}

TEST_F(CoordinatorTest, OperatorTokenIsCheckedAndOnlyItsHashIsStored) {
  std::string token = slurp(dir_.path() / "data" / "operator.token");
  while (!token.empty() && token.back() == '\n')
    token.pop_back();
  ASSERT_FALSE(token.empty());
  EXPECT_TRUE(c().check_operator_token(token));
  EXPECT_FALSE(c().check_operator_token(token + "x"));
  EXPECT_FALSE(c().check_operator_token(""));
  // While open the WAL holds the recent writes; after close they are in the db file.
  for (int pass = 0; pass < 2; ++pass) {
    for (const char* f : {"coordinator.db", "coordinator.db-wal"}) {
      const std::string bytes = slurp(dir_.path() / "data" / f);
      EXPECT_EQ(bytes.find(token), std::string::npos) << f;
    }
    coordinator_.reset();
  }
}

TEST_F(CoordinatorTest, LaterStartsReuseTheIdentity) {
  const std::string ca = c().ca_pem();
  const std::string pin = c().ca_pin();
  const std::string chain = c().server_chain_pem();
  const std::string key = c().server_key_pem();
  const std::string bundle_key = c().bundle_public_key();
  std::string token = slurp(dir_.path() / "data" / "operator.token");
  token.pop_back();
  reopen();
  EXPECT_EQ(c().ca_pem(), ca);
  EXPECT_EQ(c().ca_pin(), pin);
  EXPECT_EQ(c().server_chain_pem(), chain);
  EXPECT_EQ(c().server_key_pem(), key);
  EXPECT_EQ(c().bundle_public_key(), bundle_key);
  EXPECT_TRUE(c().check_operator_token(token));
}

TEST_F(CoordinatorTest, ChangedServerNamesReissueTheServerCertificateUnderTheSameCa) {
  const std::string ca = c().ca_pem();
  const std::string chain = c().server_chain_pem();
  coordinator_.reset();
  Options o = options();
  o.server_names = {"10.9.9.9"};
  auto reopened = Coordinator::open(o);
  ASSERT_TRUE(reopened) << reopened.error().message();
  EXPECT_EQ((*reopened)->ca_pem(), ca);
  EXPECT_NE((*reopened)->server_chain_pem(), chain);
  auto leaf = cr::Certificate::chain_from_pem((*reopened)->server_chain_pem()).value()[0];
  EXPECT_EQ(leaf.common_name(), "10.9.9.9");
}

TEST_F(CoordinatorTest, BadAutoAcceptSelectorIsRefusedAtOpen) {
  coordinator_.reset();
  Options o = options();
  o.auto_accept = "role in (";
  auto r = Coordinator::open(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), CoordinatorError::invalid_argument);
  EXPECT_NE(r.error().detail().find("auto_accept"), std::string::npos) << r.error().detail();
}

}  // namespace
}  // namespace lab::bootstrap::coordinator::testing
