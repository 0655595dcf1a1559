#include "shared/config/config.hpp"

#include "shared/config/template.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <sstream>

namespace {

using namespace lab::shared::config;
using namespace std::chrono_literals;

Schema make_schema() {
  Schema pool;
  pool.string("range", "", "first-last addresses").string("gateway", "", "router option");
  Schema s;
  s.string("data_dir", "/var/lib/lab", "state directory")
      .integer("http.port", 8080, "HTTP port", 0, 65535)
      .boolean("dhcp.enabled", true, "run the DHCP server")
      .choice("dhcp.mode", "full", {"full", "proxy", "auto"}, "DHCP mode")
      .duration("dhcp.lease_time", 12h, "lease time")
      .strings("dhcp.interfaces", {}, "interfaces to listen on")
      .integers("agent.tpm_pcrs", {}, "PCRs in the seal policy")
      .tables("dhcp.subnet", pool, "subnets");
  return s;
}

Sources text(std::string toml) {
  Sources s;
  s.texts.emplace_back("lab.toml", std::move(toml));
  return s;
}

TEST(Config, DefaultsWhenNothingIsGiven) {
  auto c = load(make_schema(), {});
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->string("data_dir"), "/var/lib/lab");
  EXPECT_EQ(c->integer("http.port"), 8080);
  EXPECT_TRUE(c->boolean("dhcp.enabled"));
  EXPECT_EQ(c->duration("dhcp.lease_time"), 12h);
  EXPECT_TRUE(c->is_default("http.port"));
  EXPECT_EQ(c->origin("http.port").kind, Origin::Kind::default_value);
}

TEST(Config, ReadsEveryTypeFromToml) {
  auto c = load(make_schema(), text(R"(
data_dir = "/tmp/x"
[http]
port = 9090
[dhcp]
enabled = false
mode = "proxy"
lease_time = "1h30m"
interfaces = ["br0", "eth1"]
[agent]
tpm_pcrs = [7, 16]
[[dhcp.subnet]]
range = "10.0.0.10-10.0.0.200"
gateway = "10.0.0.1"
[[dhcp.subnet]]
range = "10.1.0.10-10.1.0.20"
)"));
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->string("data_dir"), "/tmp/x");
  EXPECT_EQ(c->integer("http.port"), 9090);
  EXPECT_FALSE(c->boolean("dhcp.enabled"));
  EXPECT_EQ(c->string("dhcp.mode"), "proxy");
  EXPECT_EQ(c->duration("dhcp.lease_time"), 90min);
  EXPECT_EQ(c->strings("dhcp.interfaces"), (std::vector<std::string>{"br0", "eth1"}));
  EXPECT_EQ(c->integers("agent.tpm_pcrs"), (std::vector<std::int64_t>{7, 16}));
  ASSERT_EQ(c->tables("dhcp.subnet").size(), 2u);
  EXPECT_EQ(c->tables("dhcp.subnet")[0].string("gateway"), "10.0.0.1");
  EXPECT_EQ(c->tables("dhcp.subnet")[1].string("gateway"), "");
  EXPECT_EQ(c->origin("http.port").where, "lab.toml:4");
}

TEST(Config, PrecedenceIsFlagsThenEnvironmentThenFileThenDefault) {
  Schema schema = make_schema();
  Sources s = text("[http]\nport = 1000\n[dhcp]\nmode = \"proxy\"\nlease_time = 60\n");
  s.environment = {{"LAB_HTTP_PORT", "2000"}, {"LAB_DHCP_MODE", "auto"}, {"UNRELATED", "x"}};
  s.flags = {{"http.port", "3000", ""}};
  auto c = load(schema, s);
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->integer("http.port"), 3000);
  EXPECT_EQ(c->origin("http.port").kind, Origin::Kind::flag);
  EXPECT_EQ(c->origin("http.port").where, "--http-port");
  EXPECT_EQ(c->string("dhcp.mode"), "auto");
  EXPECT_EQ(c->origin("dhcp.mode").where, "LAB_DHCP_MODE");
  EXPECT_EQ(c->duration("dhcp.lease_time"), 60s);
  EXPECT_EQ(c->origin("dhcp.lease_time").kind, Origin::Kind::file);
  EXPECT_EQ(c->string("data_dir"), "/var/lib/lab");
}

TEST(Config, LaterFilesOverrideEarlierOnes) {
  lab::tests::TempDir dir;
  auto a = dir.write("10-base.toml", "[http]\nport = 1\n");
  auto b = dir.write("20-site.toml", "[http]\nport = 2\n");
  dir.write("ignored.txt", "garbage");
  Sources s;
  s.files = files_in(dir.path());
  ASSERT_EQ(s.files.size(), 2u);
  auto c = load(make_schema(), s);
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->integer("http.port"), 2);
  EXPECT_EQ(c->origin("http.port").where, b.string() + ":2");
}

TEST(Config, UnknownKeyNamesFileLineKeyAndSuggests) {
  auto c = load(make_schema(), text("[http]\nport = 1\n\n[dhcp]\nlease_tme = 5\n"));
  ASSERT_FALSE(c);
  EXPECT_TRUE(c.error() == ConfigError::unknown_key);
  EXPECT_EQ(c.error().detail(),
            "lab.toml:5: unknown key 'dhcp.lease_tme' (did you mean 'dhcp.lease_time'?)");
}

TEST(Config, UnknownTopLevelTableIsAnError) {
  auto c = load(make_schema(), text("[nonsense]\nx = 1\n"));
  ASSERT_FALSE(c);
  EXPECT_TRUE(c.error() == ConfigError::unknown_key);
  EXPECT_EQ(c.error().detail(), "lab.toml:1: unknown key 'nonsense'");
}

TEST(Config, WrongTypeNamesFileLineKeyAndBothTypes) {
  auto c = load(make_schema(), text("[http]\nport = \"eighty\"\n"));
  ASSERT_FALSE(c);
  EXPECT_TRUE(c.error() == ConfigError::wrong_type);
  EXPECT_EQ(c.error().detail(), "lab.toml:2: key 'http.port': expected an integer, got a string");

  auto l = load(make_schema(), text("[dhcp]\ninterfaces = [\"a\", 3]\n"));
  ASSERT_FALSE(l);
  EXPECT_TRUE(l.error() == ConfigError::wrong_type);
  EXPECT_NE(l.error().detail().find("dhcp.interfaces"), std::string::npos);

  auto t = load(make_schema(), text("[dhcp]\nsubnet = 5\n"));
  ASSERT_FALSE(t);
  EXPECT_TRUE(t.error() == ConfigError::wrong_type);
}

TEST(Config, ScalarWhereATableIsExpected) {
  auto c = load(make_schema(), text("http = 5\n"));
  ASSERT_FALSE(c);
  EXPECT_TRUE(c.error() == ConfigError::wrong_type);
  EXPECT_EQ(c.error().detail(), "lab.toml:1: key 'http': expected a table");
}

TEST(Config, UnknownKeyInsideTableListNamesTheElement) {
  auto c =
      load(make_schema(), text("[[dhcp.subnet]]\nrange = \"a\"\n[[dhcp.subnet]]\nrang = \"b\"\n"));
  ASSERT_FALSE(c);
  EXPECT_TRUE(c.error() == ConfigError::unknown_key);
  EXPECT_NE(c.error().detail().find("lab.toml:4: unknown key 'rang'"), std::string::npos);
  EXPECT_NE(c.error().detail().find("[[dhcp.subnet]] #2"), std::string::npos);
}

TEST(Config, RangeAndChoiceAreEnforcedEverywhere) {
  auto file = load(make_schema(), text("[http]\nport = 70000\n"));
  ASSERT_FALSE(file);
  EXPECT_TRUE(file.error() == ConfigError::invalid_value);
  EXPECT_NE(file.error().detail().find("out of range [0, 65535]"), std::string::npos);

  Sources env;
  env.environment = {{"LAB_DHCP_MODE", "turbo"}};
  auto e = load(make_schema(), env);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().detail(),
            "LAB_DHCP_MODE: key 'dhcp.mode': 'turbo' is not one of: full, proxy, auto");

  Sources flag;
  flag.flags = {{"http.port", "-1", ""}};
  auto f = load(make_schema(), flag);
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().detail().find("--http-port"), std::string::npos);
}

TEST(Config, BadEnvironmentValuesNameTheVariable) {
  Sources s;
  s.environment = {{"LAB_HTTP_PORT", "80x"}};
  auto c = load(make_schema(), s);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().detail(), "LAB_HTTP_PORT: key 'http.port': '80x' is not an integer");

  s.environment = {{"LAB_DHCP_ENABLED", "maybe"}};
  c = load(make_schema(), s);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().detail().find("'maybe' is not a boolean"), std::string::npos);
}

TEST(Config, ListsFromEnvironmentAreCommaSeparated) {
  Sources s;
  s.environment = {{"LAB_DHCP_INTERFACES", "br0, eth1"}, {"LAB_AGENT_TPM_PCRS", "7,16"}};
  auto c = load(make_schema(), s);
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->strings("dhcp.interfaces"), (std::vector<std::string>{"br0", "eth1"}));
  EXPECT_EQ(c->integers("agent.tpm_pcrs"), (std::vector<std::int64_t>{7, 16}));
}

TEST(Config, TableListsCannotComeFromFlags) {
  Sources s;
  s.flags = {{"dhcp.subnet", "x", ""}};
  auto c = load(make_schema(), s);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().detail().find("can only be set in a config file"), std::string::npos);
}

TEST(Config, UnknownFlagKeyIsAnErrorNamingTheFlagAsTyped) {
  Sources s;
  s.flags = {{"http.prot", "1", "--set http.prot"}};
  auto c = load(make_schema(), s);
  ASSERT_FALSE(c);
  EXPECT_TRUE(c.error() == ConfigError::unknown_key);
  EXPECT_EQ(c.error().detail(),
            "--set http.prot: unknown key 'http.prot' (did you mean 'http.port'?)");
}

TEST(Config, SyntaxErrorNamesFileLineAndColumn) {
  auto c = load(make_schema(), text("[http]\nport = = 3\n"));
  ASSERT_FALSE(c);
  EXPECT_TRUE(c.error() == ConfigError::syntax);
  EXPECT_EQ(c.error().detail().rfind("lab.toml:2:", 0), 0u) << c.error().detail();
}

TEST(Config, MissingFileIsAnError) {
  Sources s;
  s.files = {"/nonexistent/lab.toml"};
  auto c = load(make_schema(), s);
  ASSERT_FALSE(c);
  EXPECT_TRUE(c.error() == ConfigError::file_unreadable);
  EXPECT_NE(c.error().detail().find("/nonexistent/lab.toml"), std::string::npos);
}

TEST(Config, FilesInMissingDirectoryIsEmpty) {
  EXPECT_TRUE(files_in("/nonexistent-dir").empty());
}

TEST(Config, ReadingAnUndeclaredKeyOrWrongTypeThrows) {
  auto c = load(make_schema(), {});
  ASSERT_TRUE(c);
  EXPECT_THROW((void)c->string("nope"), std::logic_error);
  EXPECT_THROW((void)c->integer("data_dir"), std::logic_error);
}

TEST(Config, EnvironmentNames) {
  EXPECT_EQ(Schema::env_name("dhcp.lease_time"), "LAB_DHCP_LEASE_TIME");
  EXPECT_EQ(Schema::env_name("data_dir"), "LAB_DATA_DIR");
}

TEST(Config, OversizedAndGarbageInputDoesNotCrash) {
  std::string big(1 << 20, '[');
  auto c = load(make_schema(), text(big));
  EXPECT_FALSE(c);
  auto g = load(make_schema(), text(std::string("\x00\xff\xfe", 3)));
  EXPECT_FALSE(g);
}

TEST(Duration, ParsesUnitsAndCombinations) {
  EXPECT_EQ(parse_duration("90").value(), 90s);
  EXPECT_EQ(parse_duration("90s").value(), 90s);
  EXPECT_EQ(parse_duration("15m").value(), 15min);
  EXPECT_EQ(parse_duration("12h").value(), 12h);
  EXPECT_EQ(parse_duration("7d").value(), 7 * 24h);
  EXPECT_EQ(parse_duration("1h30m").value(), 90min);
  EXPECT_EQ(parse_duration("0s").value(), 0s);
}

TEST(Duration, RejectsBadInputWithAReason) {
  for (const char* bad :
       {"", "h", "-5s", "5x", "1h30", "1.5h", "99999999999999999999d", "40000d"}) {
    auto d = parse_duration(bad);
    EXPECT_FALSE(d) << bad;
    if (!d) {
      EXPECT_TRUE(d.error() == ConfigError::invalid_value);
      EXPECT_NE(d.error().detail().find("duration"), std::string::npos);
    }
  }
}

TEST(Duration, FormatsTheShortestExactForm) {
  EXPECT_EQ(format_duration(0s), "0s");
  EXPECT_EQ(format_duration(90min), "1h30m");
  EXPECT_EQ(format_duration(7 * 24h), "7d");
  EXPECT_EQ(format_duration(61s), "1m1s");
  for (auto d : {1s, 59s, 3600s, 86401s, 100000s}) {
    EXPECT_EQ(parse_duration(format_duration(d)).value(), d);
  }
}

}  // namespace

namespace {

// Uncomments the key lines of a template ("#key = value", "#[[table]]"), not the help lines.
std::string uncommented(const std::string& tmpl) {
  std::istringstream in(tmpl);
  std::string out;
  for (std::string line; std::getline(in, line);) {
    if (line.size() > 1 && line[0] == '#' && line[1] != ' ')
      line.erase(0, 1);
    out += line + '\n';
  }
  return out;
}

}  // namespace

TEST(ConfigTemplate, AsInstalledChangesNothingAndUncommentedGivesEveryDefault) {
  Schema s = make_schema();
  s.string("motd", "say \"hi\"\\n", "a string that needs escapes");
  const std::string t = commented_template(s, "lab.toml: the appliance\nsecond line");
  EXPECT_EQ(t.rfind("# lab.toml: the appliance\n# second line\n", 0), 0U) << t;
  EXPECT_NE(t.find("# DHCP mode (one of: full, proxy, auto)\n#dhcp.mode = \"full\"\n"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("# HTTP port (0..65535)\n#http.port = 8080\n"), std::string::npos) << t;
  EXPECT_NE(t.find("#dhcp.lease_time = \"12h\"\n"), std::string::npos) << t;
  // Tables come last: a key after [[dhcp.subnet]] would belong to the table.
  EXPECT_GT(t.find("#[[dhcp.subnet]]"), t.find("#agent.tpm_pcrs"));

  auto as_is = load(s, text(t));
  ASSERT_TRUE(as_is) << as_is.error().message();
  for (const auto& key : as_is->keys())
    EXPECT_TRUE(as_is->is_default(key)) << key;

  auto on = load(s, text(uncommented(t)));
  ASSERT_TRUE(on) << on.error().message() << "\n" << uncommented(t);
  EXPECT_EQ(on->string("motd"), "say \"hi\"\\n");
  EXPECT_EQ(on->string("dhcp.mode"), "full");
  EXPECT_EQ(on->duration("dhcp.lease_time"), 12h);
  EXPECT_EQ(on->integer("http.port"), 8080);
  EXPECT_TRUE(on->boolean("dhcp.enabled"));
  EXPECT_FALSE(on->is_default("http.port"));  // it came from the file
  ASSERT_EQ(on->tables("dhcp.subnet").size(), 1U);
  EXPECT_EQ(on->tables("dhcp.subnet")[0].string("gateway"), "");
}
