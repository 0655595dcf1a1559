// The last OpenVox/Puppet run summary: real files as the agent writes them, and the damaged or
// hostile ones the parser must refuse with a message that says what is wrong.
#include "agent/configrun/summary.hpp"
#include "tests/support/temp_dir.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <string>

namespace {

using namespace lab::agent::configrun;
using lab::tests::TempDir;
namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr const char* kExample = R"(---
version:
  config: 1733486400
  puppet: 8.10.0
resources:
  changed: 2
  corrective_change: 0
  failed: 1
  failed_to_restart: 0
  out_of_sync: 3
  restarted: 0
  scheduled: 0
  skipped: 0
  total: 120
time:
  catalog_application: 1.2
  config_retrieval: 0.8
  last_run: 1733486410
  total: 3.4
changes:
  total: 2
events:
  failure: 1
  success: 2
  total: 3
)";

// What an OpenVox 8 agent writes when the server's config_version script prints a branch and a
// commit: the application section, a time per resource type, and keys this does not read.
constexpr const char* kReal = R"(---
version:
  config: production-abc123
  puppet: 8.10.0
application:
  run_mode: agent
  initial_environment: production
  converged_environment: production
resources:
  changed: 0
  corrective_change: 0
  failed: 0
  failed_to_restart: 2
  out_of_sync: 0
  restarted: 1
  scheduled: 0
  skipped: 0
  total: 312
time:
  anchor: 0.000161
  exec: 0.012113
  file: 0.640226
  package: 0.221834
  service: 0.103519
  schedule: 0.000339
  filebucket: 3.8e-05
  catalog_application: 1.3041537390009034
  config_retrieval: 2.0149128669998026
  convert_catalog: 0.3003519580002
  fact_generation: 1.2104
  node_retrieval: 0.4214
  plugin_sync: 0.9025
  transaction_evaluation: 1.2503
  last_run: 1733486410
  total: 6.8437
changes:
  total: 0
events:
  failure: 0
  success: 0
  total: 0
extra:
  - a
  - {b: [1, 2, 3]}
)";

Summary parsed(std::string_view yaml) {
  auto r = parse_summary(yaml);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message());
  return r ? *r : Summary{};
}

lab::Error refused(std::string_view yaml) {
  auto r = parse_summary(yaml);
  EXPECT_FALSE(r.has_value()) << "parsed: " << yaml.substr(0, 200);
  return r ? lab::Error() : r.error();
}

std::string nested(int depth) {
  std::string y = "time: {last_run: 1}\nx: ";
  for (int i = 0; i < depth; ++i)
    y += "[";
  y += "1";
  for (int i = 0; i < depth; ++i)
    y += "]";
  return y + "\n";
}

TEST(ConfigRun, ParsesTheExample) {
  const Summary s = parsed(kExample);
  EXPECT_EQ(s.last_run, 1733486410);
  EXPECT_EQ(s.config_version, 1733486400);
  EXPECT_EQ(s.agent_version, "8.10.0");
  EXPECT_EQ(s.failures, 2);  // resources.failed 1 + failed_to_restart 0 + events.failure 1
  EXPECT_EQ(s.changes, 2);
  EXPECT_EQ(s.resources, 120);
  EXPECT_DOUBLE_EQ(s.duration_seconds, 3.4);
}

TEST(ConfigRun, ParsesARealSummaryWithExtraKeysAndANamedConfigVersion) {
  const Summary s = parsed(kReal);
  EXPECT_EQ(s.last_run, 1733486410);
  EXPECT_EQ(s.config_version, 0);
  EXPECT_EQ(s.agent_version, "8.10.0");
  EXPECT_EQ(s.failures, 2);
  EXPECT_EQ(s.changes, 0);
  EXPECT_EQ(s.resources, 312);
  EXPECT_DOUBLE_EQ(s.duration_seconds, 6.8437);
}

TEST(ConfigRun, RunWithoutACatalogLeavesFieldsZero) {
  // A run that failed before it had a catalog: a null config version, no resource counts.
  const Summary s = parsed("---\nversion:\n  config:\n  puppet: '7.34.0'\ntime:\n  last_run: 5\n");
  EXPECT_EQ(s.last_run, 5);
  EXPECT_EQ(s.config_version, 0);
  EXPECT_EQ(s.agent_version, "7.34.0");
  EXPECT_EQ(s.failures, 0);
  EXPECT_EQ(s.changes, 0);
  EXPECT_EQ(s.resources, 0);
  EXPECT_EQ(s.duration_seconds, 0);
}

TEST(ConfigRun, SyntaxErrorsNameLineAndColumn) {
  lab::Error e = refused("time:\n  last_run: 1\n  total: [1, 2\nchanges: {}\n");
  EXPECT_EQ(e, ConfigRunError::syntax);
  EXPECT_THAT(e.detail(), HasSubstr("YAML syntax error at line 4, column 8"));
  EXPECT_THAT(e.detail(), HasSubstr("(while parsing a flow sequence at line 3, column 10)"));

  e = refused("time:\n  last_run: 1\n bad: 2\n");
  EXPECT_EQ(e, ConfigRunError::syntax);
  EXPECT_THAT(e.detail(), HasSubstr("line 3, column 2"));

  // Bad encoding is found by libyaml's reader, which gives an offset: counted into a line.
  e = refused("time:\n  last_run: \xff\n");
  EXPECT_EQ(e, ConfigRunError::syntax);
  EXPECT_THAT(e.detail(), HasSubstr("line 2, column 13: invalid leading UTF-8 octet (byte 0xff)"));
}

TEST(ConfigRun, RefusesMissingLastRun) {
  lab::Error e = refused("time:\n  total: 3.4\nresources:\n  total: 1\n");
  EXPECT_EQ(e, ConfigRunError::missing_last_run);
  EXPECT_THAT(e.detail(), HasSubstr("time.last_run is missing"));
  EXPECT_EQ(refused("resources:\n  total: 1\n"), ConfigRunError::missing_last_run);
  EXPECT_EQ(refused("time:\n  last_run: ~\n"), ConfigRunError::missing_last_run);
}

TEST(ConfigRun, RefusesADocumentThatIsNotAMapping) {
  lab::Error e = refused("- time\n- last_run\n");
  EXPECT_EQ(e, ConfigRunError::not_a_mapping);
  EXPECT_THAT(e.detail(), HasSubstr("the document is a sequence, not a mapping"));
  e = refused("just text\n");
  EXPECT_EQ(e, ConfigRunError::not_a_mapping);
  EXPECT_THAT(e.detail(), HasSubstr("'just text'"));
  EXPECT_THAT(refused("---\n").detail(), HasSubstr("the document is empty"));
  e = refused("");
  EXPECT_EQ(e, ConfigRunError::empty);
  EXPECT_THAT(e.detail(), HasSubstr("no YAML document"));
}

TEST(ConfigRun, RefusesAValueOfTheWrongType) {
  lab::Error e = refused("time:\n  last_run: 1\nresources:\n  failed:\n    a: 1\n");
  EXPECT_EQ(e, ConfigRunError::wrong_type);
  EXPECT_THAT(e.detail(), HasSubstr("resources.failed: expected a number, found a mapping"));

  e = refused("time:\n  last_run: 1\nresources:\n  total: '12'\n");
  EXPECT_THAT(e.detail(), HasSubstr("resources.total: expected a number, found '12'"));
  e = refused("time:\n  last_run: 1.5\n");
  EXPECT_THAT(e.detail(), HasSubstr("time.last_run: expected a whole number, found '1.5'"));
  e = refused("time:\n  last_run: 1\n  total: fast\n");
  EXPECT_THAT(e.detail(), HasSubstr("time.total: expected a number, found 'fast'"));
  e = refused("time:\n  last_run: 1\n  total: inf\n");
  EXPECT_THAT(e.detail(), HasSubstr("time.total: expected a number, found 'inf'"));
  e = refused("time:\n  last_run: 1\nevents: [1, 2]\n");
  EXPECT_THAT(e.detail(), HasSubstr("events: expected a mapping, found a sequence"));
  e = refused("time:\n  last_run: 1\nversion:\n  puppet: [8]\n");
  EXPECT_THAT(e.detail(), HasSubstr("version.puppet: expected a string, found a sequence"));
  e = refused("time:\n  last_run: 1\nversion:\n  config: {a: 1}\n");
  EXPECT_THAT(e.detail(), HasSubstr("version.config: expected a scalar, found a mapping"));
}

TEST(ConfigRun, RefusesNumbersOutOfRange) {
  lab::Error e = refused("time:\n  last_run: 99999999999999999999\n");
  EXPECT_EQ(e, ConfigRunError::out_of_range);
  EXPECT_THAT(e.detail(), HasSubstr("time.last_run: 99999999999999999999 is out of range"));
  e = refused(
      "time:\n  last_run: 1\nresources:\n  failed: 9223372036854775807\nevents:\n  failure: 1\n");
  EXPECT_EQ(e, ConfigRunError::out_of_range);
  EXPECT_EQ(refused("time:\n  last_run: 1\n  total: 1e999\n"), ConfigRunError::out_of_range);
}

TEST(ConfigRun, RefusesAliases) {
  lab::Error e = refused("time:\n  last_run: 1\na: &x 1\nb: *x\n");
  EXPECT_EQ(e, ConfigRunError::alias);
  EXPECT_THAT(e.detail(), HasSubstr("line 4, column 4: alias *x refused"));
  // The classic expansion bomb stops at its first alias.
  EXPECT_EQ(refused("a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\ntime: {last_run: 1}\n"),
            ConfigRunError::alias);
}

TEST(ConfigRun, RefusesInputPastTheLimits) {
  std::string big = kExample;
  big += "padding: '" + std::string(2 << 20, 'x') + "'\n";
  lab::Error e = refused(big);
  EXPECT_EQ(e, ConfigRunError::too_large);
  EXPECT_THAT(e.detail(), HasSubstr("more than the 1048576"));

  e = refused(nested(20));
  EXPECT_EQ(e, ConfigRunError::too_deep);
  EXPECT_THAT(e.detail(), HasSubstr("nested more than 16 deep"));
  // The root mapping is one level: 15 more fit.
  EXPECT_EQ(parsed(nested(15)).last_run, 1);
  EXPECT_EQ(refused(nested(16)), ConfigRunError::too_deep);

  std::string many = "time: {last_run: 1}\nx: [";
  for (std::size_t i = 0; i < kMaxScalars; ++i)
    many += "1,";
  many += "1]\n";
  e = refused(many);
  EXPECT_EQ(e, ConfigRunError::too_many_scalars);
  EXPECT_THAT(e.detail(), HasSubstr("more than 10000 values"));

  e = refused("time:\n  last_run: 1\nversion:\n  puppet: " + std::string(65, '8') + "\n");
  EXPECT_EQ(e, ConfigRunError::too_long);
  EXPECT_THAT(e.detail(), HasSubstr("version.puppet: 65 characters"));
}

TEST(ConfigRun, RefusesAmbiguousDocuments) {
  lab::Error e = refused("time:\n  last_run: 1\n  last_run: 2\n");
  EXPECT_EQ(e, ConfigRunError::duplicate_key);
  EXPECT_THAT(e.detail(), HasSubstr("time.last_run: duplicate key (lines 2 and 3)"));
  e = refused("time: {last_run: 1}\n---\ntime: {last_run: 2}\n");
  EXPECT_EQ(e, ConfigRunError::several_documents);
  EXPECT_THAT(e.detail(), HasSubstr("line 2, column 1: a second YAML document"));
  e = refused("? [a]\n: 1\ntime: {last_run: 1}\n");
  EXPECT_EQ(e, ConfigRunError::complex_key);
}

TEST(ConfigRun, ReadsAFile) {
  TempDir dir("lab-configrun");
  auto r = read_summary(dir.write("last_run_summary.yaml", kExample));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->last_run, 1733486410);
  EXPECT_EQ((*r)->failures, 2);
}

TEST(ConfigRun, MissingFileIsNoConfigurationManagement) {
  TempDir dir("lab-configrun");
  auto r = read_summary(dir / "last_run_summary.yaml");
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_FALSE(r->has_value());
}

TEST(ConfigRun, UnreadablePathsAreErrors) {
  TempDir dir("lab-configrun");
  auto r = read_summary(dir.path());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), ConfigRunError::not_a_regular_file);
  EXPECT_THAT(r.error().detail(), HasSubstr(dir.path().string() + ": is a directory"));

  // A path through a regular file is not "absent": something is wrong with the node.
  const fs::path file = dir.write("file", "x");
  r = read_summary(file / "last_run_summary.yaml");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), ConfigRunError::file_open);
  EXPECT_THAT(r.error().detail(), HasSubstr("Not a directory"));

  const fs::path big = dir.write("big.yaml", std::string(2 << 20, '#'));
  r = read_summary(big);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), ConfigRunError::too_large);

  r = read_summary(dir.write("bad.yaml", "time: [\n"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), ConfigRunError::syntax);
  EXPECT_THAT(r.error().detail(), HasSubstr((dir / "bad.yaml").string() + ": YAML syntax error"));
}

TEST(ConfigRun, UnreadableFileIsAnError) {
  if (::geteuid() == 0)
    GTEST_SKIP() << "root reads a file whatever its mode";
  TempDir dir("lab-configrun");
  const fs::path p = dir.write("last_run_summary.yaml", kExample);
  fs::permissions(p, fs::perms::none);
  auto r = read_summary(p);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), ConfigRunError::file_open);
  EXPECT_THAT(r.error().detail(), HasSubstr("Permission denied"));
}

TEST(ConfigRun, JsonCarriesEveryField) {
  const boost::json::object o = to_json(parsed(kExample));
  EXPECT_EQ(o.size(), 7U);
  EXPECT_EQ(o.at("last_run").as_int64(), 1733486410);
  EXPECT_EQ(o.at("config_version").as_int64(), 1733486400);
  EXPECT_EQ(o.at("agent_version").as_string(), "8.10.0");
  EXPECT_EQ(o.at("failures").as_int64(), 2);
  EXPECT_EQ(o.at("changes").as_int64(), 2);
  EXPECT_EQ(o.at("resources").as_int64(), 120);
  EXPECT_DOUBLE_EQ(o.at("duration_seconds").as_double(), 3.4);
}

}  // namespace
