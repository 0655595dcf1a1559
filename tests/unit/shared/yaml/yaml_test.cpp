#include "shared/yaml/yaml.hpp"

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

namespace {

using lab::shared::yaml::to_yaml;

std::string yaml_of(const char* json) {
  auto y = to_yaml(boost::json::parse(json));
  EXPECT_TRUE(y) << y.error().message();
  return y ? *y : std::string();
}

TEST(Yaml, ObjectsAndArraysAreBlocksInTheirOrder) {
  EXPECT_EQ(yaml_of(R"({"name":"web1","labels":{"role":"web"},"macs":["52:54:00:12:34:56"]})"),
            "---\n"
            "name: web1\n"
            "labels:\n"
            "  role: web\n"
            "macs:\n"
            "- \"52:54:00:12:34:56\"\n");  // YAML 1.1 reads it as a base-60 integer
}

TEST(Yaml, NumbersBooleansAndNullKeepTheirTypes) {
  EXPECT_EQ(yaml_of(R"({"num":42,"neg":-7,"f":1.5,"t":true,"z":null,"e":[],"o":{}})"),
            "---\nnum: 42\nneg: -7\nf: 1.5\nt: true\nz: null\ne: []\no: {}\n");
  // A key YAML 1.1 reads as a boolean is quoted like any such string.
  EXPECT_EQ(yaml_of(R"({"n":1})"), "---\n\"n\": 1\n");
}

// A string that would read back as another type is quoted; any other string is plain.
TEST(Yaml, StringsThatLookLikeOtherTypesAreQuoted) {
  EXPECT_EQ(yaml_of(R"(["true","no","null","","42","1.5","0x1f","1e3","2026-12-06","~","web"])"),
            "---\n- \"true\"\n- \"no\"\n- \"null\"\n- \"\"\n- \"42\"\n- \"1.5\"\n- \"0x1f\"\n"
            "- \"1e3\"\n- \"2026-12-06\"\n- \"~\"\n- web\n");
}

TEST(Yaml, TextThatYamlWouldMisreadIsQuotedByTheEmitter) {
  const std::string y = yaml_of(R"({"a":"key: value","b":"- item","c":"#comment","d":"x\ny"})");
  EXPECT_EQ(y, "---\na: 'key: value'\nb: '- item'\nc: '#comment'\nd: |-\n  x\n  y\n");
}

}  // namespace
