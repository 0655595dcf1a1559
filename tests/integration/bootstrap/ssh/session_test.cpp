// bootstrap/ssh against a real OpenSSH server on loopback.
#include "bootstrap/ssh/session.hpp"

#include "tests/integration/bootstrap/ssh/sshd_fixture.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace lab::bootstrap::ssh {
namespace {

using lab::tests::SshServer;
using lab::tests::TempDir;

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LAB_REQUIRE_ROOT();
    LAB_REQUIRE_PROGRAM("sshd");
    server_.emplace();
    options_.known_hosts = tmp_ / "known_hosts";
    options_.identity = server_->client_key();
    options_.connect_timeout = std::chrono::seconds(5);
  }
  Target target() const { return *parse_target(server_->target()); }

  TempDir tmp_{"lab-ssh"};
  std::optional<SshServer> server_;
  ConnectOptions options_;
};

TEST_F(SessionTest, UnknownHostKeyIsRefusedUnlessAcceptNew) {
  auto refused = Session::open(target(), options_);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), SshError::host_key_unknown);
  EXPECT_NE(refused.error().detail().find("SHA256:"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(options_.known_hosts));

  options_.accept_new = true;
  auto accepted = Session::open(target(), options_);
  ASSERT_TRUE(accepted) << accepted.error().message();
  EXPECT_NE(lab::tests::read_file(options_.known_hosts).find("ssh-ed25519"), std::string::npos);

  options_.accept_new = false;  // now known: no flag needed
  auto again = Session::open(target(), options_);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ((*again)->fingerprint(), (*accepted)->fingerprint());
}

TEST_F(SessionTest, ChangedHostKeyIsRefusedWithBothFingerprints) {
  options_.accept_new = true;
  auto first = Session::open(target(), options_);
  ASSERT_TRUE(first) << first.error().message();
  const std::string old_fp = (*first)->fingerprint();
  first->reset();

  server_->stop();
  server_->regenerate_host_key();
  server_->start();
  auto changed = Session::open(target(), options_);  // even with accept-new
  ASSERT_FALSE(changed);
  EXPECT_EQ(changed.error(), SshError::host_key_changed);
  const std::string detail = changed.error().detail();
  EXPECT_NE(detail.find(old_fp), std::string::npos) << detail;
  const auto second_fp = detail.rfind("SHA256:");
  ASSERT_NE(second_fp, std::string::npos);
  EXPECT_NE(detail.substr(second_fp), old_fp) << detail;
}

TEST_F(SessionTest, WrongPasswordIsAnAuthenticationFailureNotRetryable) {
  options_.accept_new = true;
  options_.identity = tmp_.write("not-a-key", "garbage");
  auto bad_key = Session::open(target(), options_);
  ASSERT_FALSE(bad_key);
  EXPECT_EQ(bad_key.error(), SshError::key_file_failed);

  // A key the server does not know, then a wrong password.
  lab::tests::run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", (tmp_ / "other").string()});
  options_.identity = tmp_ / "other";
  options_.password = "definitely-wrong";
  auto refused = Session::open(target(), options_);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), SshError::auth_failed);
  EXPECT_NE(refused.error().detail().find("password"), std::string::npos);
  EXPECT_FALSE(is_connection_error(refused.error()));
}

TEST_F(SessionTest, RunsCommandsAndUploadsFiles) {
  options_.accept_new = true;
  auto s = Session::open(target(), options_);
  ASSERT_TRUE(s) << s.error().message();
  auto r = (*s)->run("echo out; echo err >&2; exit 3");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->exit_status, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");

  // Input reaches the command's stdin, which then ends.
  auto echoed = (*s)->run("cat; echo end", std::chrono::seconds(30), "secret line\n");
  ASSERT_TRUE(echoed) << echoed.error().message();
  EXPECT_EQ(echoed->out, "secret line\nend\n");
  auto too_much =
      (*s)->run("cat", std::chrono::seconds(30), std::string(Session::kMaxInput + 1, 'x'));
  ASSERT_FALSE(too_much);
  EXPECT_EQ(too_much.error(), SshError::input_too_large);

  std::string payload(3 * 1024 * 1024 + 17, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i) {
    payload[i] = static_cast<char>((i * 131) % 251);
  }
  const auto local = tmp_.write("payload", payload);
  const auto remote = tmp_ / "uploaded";
  ASSERT_TRUE((*s)->upload(local, remote.string(), 0750));
  EXPECT_EQ(lab::tests::read_file(remote), payload);
  EXPECT_EQ(std::filesystem::status(remote).permissions() & std::filesystem::perms::all,
            std::filesystem::perms(0750));

  // Never written through what is already there: a file, or a symlink to one.
  auto again = (*s)->upload(local, remote.string(), 0750);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), SshError::sftp_failed);
  const auto victim = tmp_.write("victim", "keep me");
  std::filesystem::create_symlink(victim, tmp_ / "planted");
  auto through = (*s)->upload(local, (tmp_ / "planted").string(), 0644);
  ASSERT_FALSE(through);
  EXPECT_EQ(lab::tests::read_file(victim), "keep me");

  auto slow = (*s)->run("sleep 5", std::chrono::seconds(1));
  ASSERT_FALSE(slow);
  EXPECT_EQ(slow.error(), SshError::timeout);
}

TEST_F(SessionTest, DeadHostIsAConnectionError) {
  options_.accept_new = true;
  server_->kill();
  auto s = Session::open(target(), options_);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error(), SshError::connect_failed);
  EXPECT_TRUE(is_connection_error(s.error()));
}

}  // namespace
}  // namespace lab::bootstrap::ssh
