#include "shared/json/json.hpp"

#include <gtest/gtest.h>

namespace {

using namespace lab::shared::json;

TEST(Json, ParsesObjectsAndReadsTypedFields) {
  auto o = parse_object(R"({"name":"n1","count":3,"ok":true,"tags":["a","b"],"sub":{"x":1}})");
  ASSERT_TRUE(o) << o.error().message();
  EXPECT_EQ(get_string(*o, "name").value(), "n1");
  EXPECT_EQ(get_int(*o, "count").value(), 3);
  EXPECT_TRUE(get_bool(*o, "ok").value());
  EXPECT_EQ(get_strings(*o, "tags").value(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(get_int(*get_object(*o, "sub").value(), "x").value(), 1);
  EXPECT_FALSE(optional_string(*o, "absent").value().has_value());
  EXPECT_EQ(optional_int(*o, "count").value(), 3);
}

TEST(Json, FieldErrorsNameTheField) {
  auto o = parse_object(R"({"ttl":5,"tags":["a",1],"n":null})").value();
  auto s = get_string(o, "ttl");
  ASSERT_FALSE(s);
  EXPECT_TRUE(s.error() == JsonError::wrong_type);
  EXPECT_EQ(s.error().detail(), "field 'ttl': expected a string, got a number");
  auto m = get_string(o, "name");
  EXPECT_TRUE(m.error() == JsonError::missing_field);
  EXPECT_EQ(m.error().detail(), "field 'name' is missing");
  EXPECT_TRUE(get_string(o, "n").error() == JsonError::missing_field);  // null counts as absent
  auto t = get_strings(o, "tags");
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().detail().find("tags[1]"), std::string::npos);
  EXPECT_TRUE(optional_string(o, "ttl").error() == JsonError::wrong_type);
}

TEST(Json, SyntaxErrorsGiveTheOffset) {
  auto r = parse(R"({"a":1,})");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error() == JsonError::syntax);
  EXPECT_NE(r.error().detail().find("at byte"), std::string::npos);
  EXPECT_TRUE(parse("{} trailing").error() == JsonError::syntax);
  EXPECT_TRUE(parse("").error() == JsonError::syntax);
  EXPECT_TRUE(parse_object("[1]").error() == JsonError::not_an_object);
}

TEST(Json, LimitsAreEnforced) {
  EXPECT_TRUE(parse(std::string(100, '['), {.max_size = 1000, .max_depth = 32}).error() ==
              JsonError::too_deep);
  EXPECT_TRUE(parse(std::string(2000, ' '), {.max_size = 1000, .max_depth = 32}).error() ==
              JsonError::too_large);
}

TEST(Json, PrettyIsIndentedAndReparses) {
  auto v = parse(R"({"a":[1,{"b":"c"}],"e":{},"f":[]})").value();
  const std::string p = pretty(v);
  EXPECT_EQ(p,
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": \"c\"\n    }\n  ],\n  \"e\": {},\n  \"f\": "
            "[]\n}\n");
  EXPECT_EQ(parse(p).value(), v);
  EXPECT_EQ(to_string(v), R"({"a":[1,{"b":"c"}],"e":{},"f":[]})");
  // Numbers as people write them, and still the same numbers.
  auto d = parse(R"({"seconds":29.991,"big":1e300,"n":-3})").value();
  EXPECT_EQ(pretty(d), "{\n  \"seconds\": 29.991,\n  \"big\": 1e+300,\n  \"n\": -3\n}\n");
  EXPECT_EQ(parse(pretty(d)).value(), d);
}

}  // namespace
