// The lab.* parameters of the agent OS's kernel command line: what the appliance's iPXE script
// writes parses; everything else is refused with a reason naming the parameter.
#include "agent/boot/cmdline.hpp"
#include "agent/boot/progress.hpp"
#include "shared/json/json.hpp"

#include <gtest/gtest.h>

namespace {

using namespace lab::agent::boot;
namespace proto = lab::shared::protocol;

std::string join_string() {
  proto::JoinString js;
  js.url = "https://10.98.0.1:8443";
  js.token = proto::make_token().value();
  js.ca_pin = "sha256:" + std::string(43, 'A');
  return proto::format_join_string(js);
}

TEST(BootCmdline, ParsesWhatTheBootScriptWrites) {
  const std::string js = join_string();
  const std::string text =
      "initrd=initrd.img console=tty0 console=ttyS0 lab.mode=discovery "
      "lab.mac=52:54:00:AB:cd:0E lab.server=http://10.98.0.1:8080/ lab.join=" +
      js + "\n";
  auto p = parse_cmdline(text);
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->join_text, js);
  EXPECT_EQ(p->join.url, "https://10.98.0.1:8443");
  EXPECT_EQ(p->mode, Mode::discovery);
  EXPECT_EQ(p->mac, "52:54:00:ab:cd:0e");
  EXPECT_EQ(p->server, "http://10.98.0.1:8080");
}

TEST(BootCmdline, OnlyTheJoinStringIsRequired) {
  auto p = parse_cmdline("lab.join=" + join_string());
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->mode, Mode::discovery);
  EXPECT_TRUE(p->mac.empty());
  EXPECT_TRUE(p->server.empty());
}

TEST(BootCmdline, QuotesAndWhitespaceAsTheKernelSplitsThem) {
  const std::string js = join_string();
  auto p = parse_cmdline("quiet\tfoo=\"a b\"  lab.join=\"" + js + "\"\r\n lab.mac=525400abcdef");
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->join_text, js);
  EXPECT_EQ(p->mac, "52:54:00:ab:cd:ef");
  // The same parameter twice with the same value is harmless.
  EXPECT_TRUE(parse_cmdline("lab.join=" + js + " lab.join=" + js));
}

TEST(BootCmdline, RefusesWithAReasonNamingTheParameter) {
  const std::string js = join_string();
  const struct {
    std::string text;
    BootError code;
    std::string names;
  } cases[] = {
      {"", BootError::missing_join, "lab.join"},
      {"console=ttyS0 lab.mode=discovery", BootError::missing_join, "lab.join"},
      {"lab.join=", BootError::missing_join, "lab.join"},
      {"lab.join", BootError::missing_join, "lab.join"},
      {"lab.join=" + js + " lab.colour=blue lab.Join=x lab.colour=red",
       BootError::unknown_parameter, "lab.colour, lab.Join"},
      {"lab.join=" + js + " lab.", BootError::unknown_parameter, "lab."},
      {"lab.join=lab1:not-base64!", BootError::bad_join, "lab.join"},
      {"lab.join=" + js + " lab.mode=provision", BootError::bad_mode, "lab.mode=provision"},
      {"lab.join=" + js + " lab.mac=52:54:00:12:34", BootError::bad_mac, "lab.mac"},
      {"lab.join=" + js + " lab.mac=52:54-00:12:34:56", BootError::bad_mac, "lab.mac"},
      {"lab.join=" + js + " lab.mac=zz:54:00:12:34:56", BootError::bad_mac, "lab.mac"},
      {"lab.join=" + js + " lab.server=ftp://x", BootError::bad_server, "lab.server"},
      {"lab.join=" + js + " lab.server=http://", BootError::bad_server, "lab.server"},
      {"lab.join=" + js +
           " lab.server=http://a\x01"
           "b",
       BootError::bad_server, "lab.server"},
      {"lab.join=" + js + " lab.join=" + join_string(), BootError::duplicate_parameter, "lab.join"},
      {std::string(kMaxCmdline + 1, 'x'), BootError::cmdline_unreadable, "bytes"},
  };
  for (const auto& c : cases) {
    auto p = parse_cmdline(c.text);
    ASSERT_FALSE(p) << c.text;
    EXPECT_EQ(p.error(), c.code) << c.text << ": " << p.error().message();
    EXPECT_NE(p.error().detail().find(c.names), std::string::npos) << p.error().message();
    // One line without control bytes: it goes to the serial console and the flight recorder.
    for (const char ch : p.error().message()) {
      const auto u = static_cast<unsigned char>(ch);
      EXPECT_TRUE(u >= 0x20 && u != 0x7f) << c.text;
    }
  }
}

TEST(BootCmdline, ControlBytesInUnknownNamesStayOffTheConsole) {
  auto p = parse_cmdline("lab.join=x lab.\x1b[2Jevil=1");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error(), BootError::unknown_parameter);
  EXPECT_EQ(p.error().detail().find('\x1b'), std::string::npos);
}

TEST(BootCmdline, ReportTargetIsReadEvenFromABadCommandLine) {
  auto t = report_target("lab.oops=1 lab.mac=52-54-00-12-34-56 lab.server=http://10.0.0.1:8080");
  EXPECT_EQ(t.mac, "52:54:00:12:34:56");
  EXPECT_EQ(t.server, "http://10.0.0.1:8080");
  auto none = report_target("lab.mac=nope lab.server=gopher://x");
  EXPECT_TRUE(none.mac.empty());
  EXPECT_TRUE(none.server.empty());
}

TEST(BootCmdline, CanonicalMac) {
  EXPECT_EQ(canonical_mac("52:54:00:12:34:56"), "52:54:00:12:34:56");
  EXPECT_EQ(canonical_mac("52-54-00-AB-CD-EF"), "52:54:00:ab:cd:ef");
  EXPECT_EQ(canonical_mac("525400ABCDEF"), "52:54:00:ab:cd:ef");
  EXPECT_EQ(canonical_mac("5254:00:12:34:56"), "");
  EXPECT_EQ(canonical_mac("52:54:00:12:34:56:78"), "");
  EXPECT_EQ(canonical_mac(""), "");
}

TEST(BootProgress, BodyIsTheJsonTheServerExpects) {
  auto o = lab::shared::json::parse_object(
      progress_json("52:54:00:12:34:56", "failed", std::string(1000, 'x')));
  ASSERT_TRUE(o);
  EXPECT_EQ(o->at("mac"), "52:54:00:12:34:56");
  EXPECT_EQ(o->at("stage"), "failed");
  EXPECT_EQ(o->at("detail").as_string().size(), kMaxProgressDetail);
  // Without a server or a MAC there is nobody to tell: a no-op, not an error.
  ProgressReporter off("", "52:54:00:12:34:56");
  EXPECT_FALSE(off.enabled());
  EXPECT_TRUE(off.report("joining", "x"));
}

}  // namespace
