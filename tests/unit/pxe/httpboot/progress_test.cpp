// POST /boot/progress bodies and the per-MAC rate limit, without sockets.
#include "pxe/httpboot/progress.hpp"

#include "pxe/httpboot/error.hpp"

#include <gtest/gtest.h>

namespace {

using namespace lab::pxe::httpboot;
using namespace std::chrono_literals;

TEST(Progress, ParsesAndCleansAReport) {
  auto p = parse_progress(
      R"({"mac":"52-54-00-AB-CD-EF","stage":"failed","detail":"bad\u001b[2J\nline"})");
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->mac, "52:54:00:ab:cd:ef");
  EXPECT_EQ(p->stage, "failed");
  EXPECT_EQ(p->detail, "bad?[2J?line");
  auto no_detail = parse_progress(R"({"mac":"525400abcdef","stage":"joining"})");
  ASSERT_TRUE(no_detail);
  EXPECT_TRUE(no_detail->detail.empty());
  auto long_detail = parse_progress(R"({"mac":"525400abcdef","stage":"joining","detail":")" +
                                    std::string(1000, 'a') + "\"}");
  ASSERT_TRUE(long_detail);
  EXPECT_EQ(long_detail->detail.size(), kMaxProgressDetail);
}

TEST(Progress, RefusesBadBodiesNamingTheField) {
  const struct {
    std::string body;
    std::string names;
  } cases[] = {
      {"", "body"},
      {"[]", "body"},
      {"{", "body"},
      {R"({"stage":"failed"})", "mac"},
      {R"({"mac":7,"stage":"failed"})", "mac"},
      {R"({"mac":"52:54:00","stage":"failed"})", "mac"},
      {R"({"mac":"525400abcdef"})", "stage"},
      {R"({"mac":"525400abcdef","stage":"pwned"})", "stage"},
      {R"({"mac":"525400abcdef","stage":"failed","detail":{}})", "detail"},
      {std::string(kMaxProgressBody + 1, ' '), "body"},
  };
  for (const auto& c : cases) {
    auto p = parse_progress(c.body);
    ASSERT_FALSE(p) << c.body;
    EXPECT_EQ(p.error(), HttpBootError::bad_progress);
    EXPECT_NE(p.error().detail().find(c.names), std::string::npos) << p.error().message();
  }
}

TEST(ProgressLimiter, BurstThenOnePerInterval) {
  ProgressLimiter limiter({.burst = 3, .refill = 1000ms, .max_macs = 16});
  const auto t0 = std::chrono::steady_clock::time_point(std::chrono::hours(1));
  const std::string mac = "52:54:00:00:00:01";
  EXPECT_TRUE(limiter.allow(mac, t0));
  EXPECT_TRUE(limiter.allow(mac, t0));
  EXPECT_TRUE(limiter.allow(mac, t0));
  EXPECT_FALSE(limiter.allow(mac, t0));
  EXPECT_FALSE(limiter.allow(mac, t0 + 500ms));
  EXPECT_TRUE(limiter.allow(mac, t0 + 1000ms));
  EXPECT_FALSE(limiter.allow(mac, t0 + 1100ms));
  // Another machine has its own bucket.
  EXPECT_TRUE(limiter.allow("52:54:00:00:00:02", t0 + 1100ms));
  // A long pause refills to the burst, not beyond.
  const auto later = t0 + std::chrono::hours(1);
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(limiter.allow(mac, later));
  EXPECT_FALSE(limiter.allow(mac, later));
}

TEST(ProgressLimiter, MemoryIsBoundedByMacs) {
  ProgressLimiter limiter({.burst = 1, .refill = 1000ms, .max_macs = 4});
  const auto t0 = std::chrono::steady_clock::time_point(std::chrono::hours(1));
  for (int i = 0; i < 1000; ++i) {
    char mac[32];
    std::snprintf(mac, sizeof mac, "52:54:00:00:%02x:%02x", (i >> 8) & 0xff, i & 0xff);
    EXPECT_TRUE(limiter.allow(mac, t0));
    EXPECT_LE(limiter.tracked(), 4U);
  }
  // The most recent MACs are still tracked (and limited); the oldest were forgotten.
  EXPECT_FALSE(limiter.allow("52:54:00:00:03:e7", t0));
  EXPECT_TRUE(limiter.allow("52:54:00:00:00:00", t0));
}

}  // namespace
