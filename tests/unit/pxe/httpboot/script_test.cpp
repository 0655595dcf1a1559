// iPXE script rendering: profile choice by selector, discovery, placeholders, MAC paths.
#include "pxe/httpboot/script.hpp"

#include "pxe/httpboot/error.hpp"

#include <gtest/gtest.h>

namespace {

using namespace lab::pxe::httpboot;
using lab::shared::labels::LabelSet;

ProfileSet profiles() {
  auto set = ProfileSet::create({
      {.name = "discovery",
       .selector = "",
       .kernel = "agent/vmlinuz",
       .initrd = "agent/initrd.img",
       .cmdline = "console=ttyS0 lab.mode=discovery"},
      {.name = "web",
       .selector = "role=web,env in (prod,stage)",
       .kernel = "web/vmlinuz",
       .initrd = "{server}/boot/web/initrd-{mac}.img",
       .cmdline = "console=ttyS0 lab.token={token}"},
      {.name = "gpu",
       .selector = "gpu",
       .kernel = "http://mirror/gpu/vmlinuz",
       .initrd = "",
       .cmdline = ""},
      {.name = "catchall", .selector = "", .kernel = "any/vmlinuz", .initrd = "", .cmdline = ""},
  });
  EXPECT_TRUE(set) << set.error().message();
  return std::move(*set);
}

const ScriptContext kCtx{.mac = "52:54:00:12:34:56",
                         .server = "http://10.0.0.1:8080",
                         .token = "tok123",
                         .join = "lab1.abc.def",
                         .notice = ""};

TEST(HttpBootProfiles, FirstMatchingSelectorInOrderWins) {
  const auto set = profiles();
  const LabelSet web{{"role", "web"}, {"env", "prod"}, {"gpu", "yes"}};
  EXPECT_EQ(set.select(&web)->spec.name, "web");
  const LabelSet gpu{{"gpu", "yes"}};
  EXPECT_EQ(set.select(&gpu)->spec.name, "gpu");
  const LabelSet other{{"role", "db"}};
  EXPECT_EQ(set.select(&other)->spec.name, "catchall");
}

TEST(HttpBootProfiles, UnknownMachinesBootDiscoveryAndDiscoveryIsNeverSelectorMatched) {
  const auto set = profiles();
  EXPECT_EQ(set.select(nullptr)->spec.name, "discovery");
  auto only = ProfileSet::create(
      {{.name = "discovery", .selector = "", .kernel = "k", .initrd = "", .cmdline = ""},
       {.name = "web", .selector = "role=web", .kernel = "k2", .initrd = "", .cmdline = ""}});
  ASSERT_TRUE(only);
  const LabelSet db{{"role", "db"}};
  EXPECT_EQ(only->select(&db)->spec.name, "discovery");  // known, but nothing else matches
  auto none = ProfileSet::create(
      {{.name = "web", .selector = "role=web", .kernel = "k", .initrd = "", .cmdline = ""}});
  ASSERT_TRUE(none);
  EXPECT_EQ(none->select(nullptr), nullptr);
}

TEST(HttpBootProfiles, InvalidProfilesAreRefusedNamingTheProfile) {
  auto bad_selector = ProfileSet::create(
      {{.name = "x", .selector = "role in (", .kernel = "k", .initrd = "", .cmdline = ""}});
  ASSERT_FALSE(bad_selector);
  EXPECT_EQ(bad_selector.error(), HttpBootError::profile_selector);
  EXPECT_NE(bad_selector.error().detail().find("'x'"), std::string::npos);
  auto dup = ProfileSet::create(
      {{.name = "x", .selector = "", .kernel = "k", .initrd = "", .cmdline = ""},
       {.name = "x", .selector = "", .kernel = "k", .initrd = "", .cmdline = ""}});
  EXPECT_EQ(dup.error(), HttpBootError::profile_duplicate);
  auto no_kernel = ProfileSet::create(
      {{.name = "x", .selector = "", .kernel = "", .initrd = "", .cmdline = ""}});
  EXPECT_EQ(no_kernel.error(), HttpBootError::profile_invalid);
  auto unknown = ProfileSet::create(
      {{.name = "x", .selector = "", .kernel = "k", .initrd = "", .cmdline = "a={hostname}"}});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error(), HttpBootError::unknown_placeholder);
  EXPECT_NE(unknown.error().detail().find("cmdline"), std::string::npos);
  auto unclosed = ProfileSet::create(
      {{.name = "x", .selector = "", .kernel = "k{mac", .initrd = "", .cmdline = ""}});
  EXPECT_EQ(unclosed.error(), HttpBootError::unknown_placeholder);
}

TEST(HttpBootScript, DiscoveryScriptCarriesKernelInitrdNameAndJoinString) {
  const auto set = profiles();
  auto s = render_script(*set.select(nullptr), kCtx);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(*s,
            "#!ipxe\n"
            "# lab boot profile discovery for 52:54:00:12:34:56\n"
            "kernel http://10.0.0.1:8080/boot/agent/vmlinuz initrd=initrd.img console=ttyS0 "
            "lab.mode=discovery lab.join=lab1.abc.def\n"
            "initrd http://10.0.0.1:8080/boot/agent/initrd.img\n"
            "boot\n");
}

TEST(HttpBootScript, PlaceholdersExpandInKernelInitrdAndCmdline) {
  const auto set = profiles();
  const LabelSet web{{"role", "web"}, {"env", "stage"}};
  auto s = render_script(*set.select(&web), kCtx);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_NE(s->find("kernel http://10.0.0.1:8080/boot/web/vmlinuz "
                    "initrd=initrd-52:54:00:12:34:56.img console=ttyS0 lab.token=tok123 "
                    "lab.join=lab1.abc.def\n"),
            std::string::npos)
      << *s;
  EXPECT_NE(s->find("initrd http://10.0.0.1:8080/boot/web/initrd-52:54:00:12:34:56.img\n"),
            std::string::npos);
}

TEST(HttpBootScript, AbsoluteUrlsNoInitrdAndNoToken) {
  const auto set = profiles();
  const LabelSet gpu{{"gpu", ""}};
  ScriptContext ctx = kCtx;
  ctx.token.clear();
  ctx.join.clear();
  auto s = render_script(*set.select(&gpu), ctx);
  ASSERT_TRUE(s);
  EXPECT_EQ(*s,
            "#!ipxe\n# lab boot profile gpu for 52:54:00:12:34:56\n"
            "kernel http://mirror/gpu/vmlinuz\nboot\n");
}

TEST(HttpBootScript, AnExplicitJoinIsNotRepeated) {
  auto set = ProfileSet::create({{.name = "discovery",
                                  .selector = "",
                                  .kernel = "k",
                                  .initrd = "",
                                  .cmdline = "lab.join={join} quiet"}});
  ASSERT_TRUE(set);
  auto s = render_script(*set->select(nullptr), kCtx);
  ASSERT_TRUE(s);
  EXPECT_NE(s->find("kernel http://10.0.0.1:8080/boot/k lab.join=lab1.abc.def quiet\n"),
            std::string::npos)
      << *s;
}

TEST(HttpBootScript, ValuesThatWouldInjectCommandsAreRefused) {
  const auto set = profiles();
  ScriptContext ctx = kCtx;
  ctx.join = "x\nshell";
  auto s = render_script(*set.select(nullptr), ctx);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error(), HttpBootError::unsafe_value);
  ctx.join = "x y";
  EXPECT_FALSE(render_script(*set.select(nullptr), ctx));
}

TEST(HttpBootScript, GenericScriptChainsToThePerMachineScript) {
  const std::string s = generic_script("http://10.0.0.1:8080");
  EXPECT_EQ(s.rfind("#!ipxe\n", 0), 0u);
  EXPECT_NE(s.find("chain http://10.0.0.1:8080/boot/${netX/mac}.ipxe"), std::string::npos);
  EXPECT_NE(s.find("chain http://10.0.0.1:8080/boot/boot.ipxe\n"), std::string::npos) << s;
}

TEST(HttpBootScript, AProfileUsingTheTokenCannotRenderWithoutOne) {
  const auto set = profiles();
  const LabelSet web{{"role", "web"}, {"env", "prod"}};
  const Profile* p = set.select(&web);
  EXPECT_TRUE(needs_token(*p));
  EXPECT_FALSE(needs_token(*set.select(nullptr)));
  ScriptContext ctx = kCtx;
  ctx.token.clear();
  ctx.join.clear();
  auto s = render_script(*p, ctx);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error(), HttpBootError::token_required);
}

TEST(HttpBootScript, TheNoticeIsEchoedAndMustStayOnOneLine) {
  const auto set = profiles();
  ScriptContext ctx = kCtx;
  ctx.token.clear();
  ctx.join.clear();
  ctx.notice = "lab: no machine registry, booting without a boot token";
  auto s = render_script(*set.select(nullptr), ctx);
  ASSERT_TRUE(s);
  EXPECT_NE(s->find("\necho lab: no machine registry, booting without a boot token\nkernel "),
            std::string::npos)
      << *s;
  EXPECT_EQ(s->find("lab.join="), std::string::npos);
  ctx.notice = "x\nshell";
  auto bad = render_script(*set.select(nullptr), ctx);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), HttpBootError::unsafe_value);
}

TEST(HttpBootPath, AcceptsColonHyphenAndBareMacsInAnyCase) {
  EXPECT_EQ(parse_script_path("/boot/52:54:00:12:34:56.ipxe").value(), "52:54:00:12:34:56");
  EXPECT_EQ(parse_script_path("/boot/52-54-00-AB-CD-EF.ipxe").value(), "52:54:00:ab:cd:ef");
  EXPECT_EQ(parse_script_path("/boot/525400ABcdef.ipxe").value(), "52:54:00:ab:cd:ef");
}

TEST(HttpBootPath, RefusesEverythingElse) {
  for (const char* bad :
       {"", "/", "/boot/", "/boot/.ipxe", "/boot/52:54:00:12:34:56", "/boot/52:54:00:12:34.ipxe",
        "/boot/52:54:00:12:34:56:78.ipxe", "/boot/zz:54:00:12:34:56.ipxe",
        "/boot/../52:54:00:12:34:56.ipxe", "/boot/52:54:00:12:34:56.ipxe/x",
        "/files/52:54:00:12:34:56.ipxe", "/boot/52:54-00:12:34:56.ipxe",
        "/boot/52:54:00:12:34:56.IPXE", "/boot/x/52:54:00:12:34:56.ipxe"}) {
    auto r = parse_script_path(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error(), HttpBootError::bad_script_path);
    }
  }
}

}  // namespace
