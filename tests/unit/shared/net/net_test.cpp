#include "shared/net/ip.hpp"
#include "shared/net/mac.hpp"

#include <gtest/gtest.h>

namespace {

namespace net = lab::shared::net;

TEST(NetMac, AcceptsColonHyphenAndBareFormsInAnyCase) {
  EXPECT_EQ(net::normalize_mac("52:54:00:12:34:56"), "52:54:00:12:34:56");
  EXPECT_EQ(net::normalize_mac("52-54-00-AB-cd-EF"), "52:54:00:ab:cd:ef");
  EXPECT_EQ(net::normalize_mac("525400ABCDEF"), "52:54:00:ab:cd:ef");
}

TEST(NetMac, RefusesMalformedAddresses) {
  for (const char* bad : {"", "52:54:00:12:34", "52:54:00:12:34:5g", "52:54-00:12:34:56",
                          "52.54.00.12.34.56", "52:54:00:12:34:56:78", "5254001234",
                          ":::::::::::::::::", "52:54:00:12:34:56 ", "52:54:00:12:3:456"}) {
    EXPECT_FALSE(net::normalize_mac(bad)) << bad;
  }
}

TEST(Net, IpLiteralsOnly) {
  for (const char* ip : {"10.0.0.5", "127.0.0.1", "fd00::5", "::1"})
    EXPECT_TRUE(net::is_ip_literal(ip)) << ip;
  for (const char* bad : {"", "999.1.1.1", "10.0.0", "host.example", "10.0.0.5 ", "fd00::5%eth0"})
    EXPECT_FALSE(net::is_ip_literal(bad)) << bad;
}

}  // namespace
