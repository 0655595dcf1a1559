#include "shared/labels/selector.hpp"

#include <gtest/gtest.h>

namespace {

using namespace lab::shared::labels;

bool match(std::string_view selector, const LabelSet& labels) {
  auto s = Selector::parse(selector);
  EXPECT_TRUE(s) << s.error().message();
  return s && s->matches(labels);
}

LabelSet web() {
  return {{"role", "web"}, {"env", "prod"}, {"rack", "r7"}};
}
LabelSet gpu() {
  return {{"role", "batch"}, {"env", "stage"}, {"gpu", "a100"}};
}

TEST(Selector, EqualityAndInequality) {
  EXPECT_TRUE(match("role=web", web()));
  EXPECT_TRUE(match("role==web", web()));
  EXPECT_FALSE(match("role=web", gpu()));
  EXPECT_TRUE(match("role!=web", gpu()));
  EXPECT_FALSE(match("role!=web", web()));
  EXPECT_TRUE(match("missing!=x", web()));  // != matches when the key is absent
}

TEST(Selector, SetMembership) {
  EXPECT_TRUE(match("env in (prod,stage)", web()));
  EXPECT_TRUE(match("env in (prod, stage)", gpu()));
  EXPECT_FALSE(match("env in (dev)", web()));
  EXPECT_TRUE(match("env notin (dev,test)", web()));
  EXPECT_FALSE(match("env notin (prod)", web()));
  EXPECT_TRUE(match("missing notin (x)", web()));
  EXPECT_FALSE(match("missing in (x)", web()));
}

TEST(Selector, ExistenceAndAbsence) {
  EXPECT_TRUE(match("gpu", gpu()));
  EXPECT_FALSE(match("gpu", web()));
  EXPECT_TRUE(match("!gpu", web()));
  EXPECT_FALSE(match("!gpu", gpu()));
}

TEST(Selector, CommasAreAnd) {
  EXPECT_TRUE(match("role=web,env in (prod,stage),!gpu", web()));
  EXPECT_FALSE(match("role=web,env in (prod,stage),!gpu", gpu()));
  EXPECT_FALSE(match("role=web,gpu", web()));
}

TEST(Selector, EmptySelectorMatchesEverything) {
  EXPECT_TRUE(match("", web()));
  EXPECT_TRUE(match("   ", LabelSet{}));
  EXPECT_TRUE(Selector::parse("").value().empty());
}

TEST(Selector, PrefixedKeysAndEmptyValues) {
  const LabelSet l{{"lab.dev/zone", "a"}, {"flag", ""}};
  EXPECT_TRUE(match("lab.dev/zone=a", l));
  EXPECT_TRUE(match("flag=", l));
  EXPECT_FALSE(match("flag=x", l));
}

TEST(Selector, CanonicalTextRoundTrips) {
  for (const char* text :
       {"role=web,env in (stage,prod),!gpu", " a != b , c notin ( z , y , z ) ", "k", "x==y"}) {
    auto s = Selector::parse(text).value();
    auto again = Selector::parse(s.to_string());
    ASSERT_TRUE(again) << s.to_string();
    EXPECT_EQ(*again, s) << text;
  }
  EXPECT_EQ(Selector::parse("env in (stage,prod),!gpu,x!=y").value().to_string(),
            "env in (prod,stage),!gpu,x!=y");
}

struct BadCase {
  const char* selector;
  std::size_t column;
  const char* says;
};

// Test names must not depend on addresses: ctest discovers them in one run and uses them in
// another.
// NOLINTNEXTLINE(readability-identifier-naming): GoogleTest's printer hook
void PrintTo(const BadCase& c, std::ostream* os) {
  *os << '"' << c.selector << '"';
}

class SelectorErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(SelectorErrors, PointAtTheOffendingCharacter) {
  const BadCase& c = GetParam();
  auto s = Selector::parse(c.selector);
  ASSERT_FALSE(s) << c.selector;
  EXPECT_TRUE(s.error() == LabelError::selector_syntax);
  const std::string d = s.error().detail();
  EXPECT_NE(d.find("at column " + std::to_string(c.column) + ":"), std::string::npos)
      << c.selector << " → " << d;
  EXPECT_NE(d.find(c.says), std::string::npos) << c.selector << " → " << d;
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, SelectorErrors,
    ::testing::Values(
        BadCase{"role=web,,x", 10, "expected a label key, found ','"},
        BadCase{",", 1, "expected a label key"}, BadCase{"role=web,", 10, "found the end"},
        BadCase{"env in prod", 8, "expected '('"}, BadCase{"env in ()", 9, "value set is empty"},
        BadCase{"env in (a b)", 11, "expected ',' or ')'"},
        BadCase{"c notin (,)", 10, "empty value in the value set"},
        BadCase{"c in (a,)", 9, "empty value in the value set"},
        BadCase{"env in (a", 10, "expected ',' or ')'"},
        BadCase{"env inn (a)", 5, "expected an operator"},
        BadCase{"a!b", 3, "expected '=' after '!'"}, BadCase{"a=b=c", 4, "expected ',' or the end"},
        BadCase{"-bad=x", 1, "must start with a letter or digit"},
        BadCase{"k=-v", 3, "must start with a letter or digit"},
        BadCase{"k=v)", 4, "expected ',' or the end"}, BadCase{"!", 2, "expected a label key"},
        BadCase{"a=\x01", 3, "control character 1"}),
    [](const ::testing::TestParamInfo<BadCase>& p) { return "case" + std::to_string(p.index); });

TEST(Selector, OversizedSelectorIsRefused) {
  auto s = Selector::parse(std::string(kMaxSelectorLength + 1, 'a'));
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().detail().find("at most 4096"), std::string::npos);
}

}  // namespace
