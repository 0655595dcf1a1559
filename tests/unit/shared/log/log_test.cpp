#include "shared/log/log.hpp"

#include <gtest/gtest.h>

#include <sstream>

namespace {

using lab::shared::log::Format;
using lab::shared::log::Level;
using lab::shared::log::Logger;

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    lab::shared::log::configure({.level = Level::info, .format = Format::plain, .output = &out_});
  }
  void TearDown() override { lab::shared::log::configure({}); }
  std::ostringstream out_;
};

TEST_F(LogTest, WritesLevelComponentMessageAndFields) {
  Logger log("dhcp");
  log.info("lease granted", {{"mac", "52:54:00:12:34:56"}, {"ip", "10.0.0.5"}, {"lease_s", 3600}});
  const std::string line = out_.str();
  EXPECT_NE(line.find("level=info component=dhcp msg=\"lease granted\" mac=52:54:00:12:34:56 "
                      "ip=10.0.0.5 lease_s=3600\n"),
            std::string::npos)
      << line;
  // Plain format starts with an ISO-8601 UTC timestamp.
  EXPECT_EQ(line[4], '-');
  EXPECT_NE(line.find("Z level="), std::string::npos);
}

TEST_F(LogTest, FiltersBelowTheConfiguredLevel) {
  Logger log("tftp");
  log.debug("not shown");
  EXPECT_TRUE(out_.str().empty());
  EXPECT_FALSE(log.enabled(Level::debug));
  lab::shared::log::set_level(Level::debug);
  log.debug("shown");
  EXPECT_NE(out_.str().find("msg=shown"), std::string::npos);
}

TEST_F(LogTest, QuotesAndEscapesValuesThatNeedIt) {
  const std::string line = lab::shared::log::format_line("x", Level::warn, "m",
                                                         {{"a", "has space"},
                                                          {"b", "q\"uote"},
                                                          {"c", "new\nline"},
                                                          {"d", ""},
                                                          {"e", "k=v"},
                                                          {"f", std::string("\x01", 1)}});
  EXPECT_EQ(line,
            "level=warn component=x msg=m a=\"has space\" b=\"q\\\"uote\" c=\"new\\nline\" d=\"\" "
            "e=\"k=v\" f=\"\\x01\"");
}

TEST(LogJournal, JournaldFormatHasPriorityPrefixAndNoTimestamp) {
  std::ostringstream out;
  lab::shared::log::configure({.level = Level::info, .format = Format::journald, .output = &out});
  Logger("agent").error("unseal failed", {{"pcrs", "7"}});
  Logger("agent").warn("stale");
  Logger("agent").info("ok");
  lab::shared::log::configure({});
  EXPECT_EQ(out.str(),
            "<3>level=error component=agent msg=\"unseal failed\" pcrs=7\n"
            "<4>level=warn component=agent msg=stale\n"
            "<6>level=info component=agent msg=ok\n");
}

TEST(LogLevel, ParsesNamesAndRejectsUnknown) {
  Level l = Level::info;
  EXPECT_TRUE(lab::shared::log::parse_level("debug", l));
  EXPECT_EQ(l, Level::debug);
  EXPECT_FALSE(lab::shared::log::parse_level("verbose", l));
  EXPECT_EQ(l, Level::debug);
  EXPECT_EQ(lab::shared::log::level_name(Level::warn), "warn");
}

}  // namespace
