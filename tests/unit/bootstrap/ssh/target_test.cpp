#include "bootstrap/ssh/session.hpp"

#include <gtest/gtest.h>

namespace lab::bootstrap::ssh {
namespace {

TEST(ParseTarget, HostAlone) {
  auto t = parse_target("web1");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->user, "root");
  EXPECT_EQ(t->host, "web1");
  EXPECT_EQ(t->port, 22);
  EXPECT_EQ(t->to_string(), "root@web1");
}

TEST(ParseTarget, UserHostPort) {
  auto t = parse_target("admin@10.0.0.5:2222");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->user, "admin");
  EXPECT_EQ(t->host, "10.0.0.5");
  EXPECT_EQ(t->port, 2222);
  EXPECT_EQ(t->to_string(), "admin@10.0.0.5:2222");
}

TEST(ParseTarget, BracketedIpv6) {
  auto t = parse_target("root@[fd00::1]:2200");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "fd00::1");
  EXPECT_EQ(t->port, 2200);
  EXPECT_EQ(t->to_string(), "root@[fd00::1]:2200");
}

TEST(ParseTarget, RefusesBadInputNamingIt) {
  for (const char* bad : {"", "@host", "root@", "host:0", "host:65536", "host:22x",
                          "host:", "[fd00::1", "[::1]x", "a b", "host/x"}) {
    auto t = parse_target(bad);
    ASSERT_FALSE(t) << bad;
    EXPECT_EQ(t.error(), SshError::bad_target) << bad;
  }
  auto t = parse_target("web1:99999");
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().detail().find("99999"), std::string::npos);
}

TEST(ConnectionErrors, OnlyNetworkFailuresAreRetryable) {
  EXPECT_TRUE(is_connection_error(Error(SshError::connect_failed)));
  EXPECT_TRUE(is_connection_error(Error(SshError::channel_failed)));
  EXPECT_FALSE(is_connection_error(Error(SshError::auth_failed)));
  EXPECT_FALSE(is_connection_error(Error(SshError::host_key_changed)));
  EXPECT_FALSE(is_connection_error(Error(SshError::host_key_unknown)));
}

}  // namespace
}  // namespace lab::bootstrap::ssh
