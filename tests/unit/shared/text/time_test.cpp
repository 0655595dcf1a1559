#include "shared/text/time.hpp"

#include <gtest/gtest.h>

namespace {

using lab::shared::text::format_age;
using lab::shared::text::format_time;
using lab::shared::text::parse_time;

TEST(TextTime, TimesAreIso8601InUtcAndNeverIsADash) {
  EXPECT_EQ(format_time(1700000000), "2023-11-14T22:13:20Z");
  EXPECT_EQ(format_time(0), "-");
  EXPECT_EQ(format_time(-5), "-");
}

TEST(TextTime, AgesShowTheTwoLargestUnits) {
  EXPECT_EQ(format_age(0), "0s");
  EXPECT_EQ(format_age(-3), "0s");
  EXPECT_EQ(format_age(45), "45s");
  EXPECT_EQ(format_age(60), "1m");
  EXPECT_EQ(format_age(192), "3m12s");
  EXPECT_EQ(format_age(7500), "2h5m");
  EXPECT_EQ(format_age(3 * 86400 + 4 * 3600 + 59), "3d4h");
}

TEST(TextTime, ParseTimeTakesWhatFormatTimeWritesAndADate) {
  EXPECT_EQ(parse_time("2023-11-14T22:13:20Z"), 1700000000);
  EXPECT_EQ(parse_time(format_time(1765000000)), 1765000000);
  EXPECT_EQ(parse_time("2023-11-14"), 1699920000);
  for (const char* bad :
       {"", "yesterday", "2023-11-14T22:13:20", "2023-11-14T22:13:20Z+", "14/11/2023"})
    EXPECT_FALSE(parse_time(bad)) << bad;
}

}  // namespace
