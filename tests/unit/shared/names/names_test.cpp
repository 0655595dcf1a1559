#include "shared/names/names.hpp"

#include <gtest/gtest.h>

namespace {

namespace names = lab::shared::names;
using names::Kind;

TEST(Names, GoodNamesPass) {
  for (const char* n : {"web1", "a", "db-primary", "x_y.z", "Node1"})
    EXPECT_TRUE(names::check(Kind::group, n)) << n;
  EXPECT_TRUE(names::check(Kind::operator_name, "alice-2"));
}

// What cannot be one path segment, or breaks the label-value rule, is refused with the kind,
// the value and the reason.
TEST(Names, BadNamesNameKindValueAndReason) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a/b", "has '/' at position 2 (allowed: letters, digits, '-', '_', '.')"},
      {".", "must start with a letter or digit"},
      {"..", "must start with a letter or digit"},
      {"", "must not be empty"},
      {"web-", "must end with a letter or digit"},
      {std::string(64, 'a'), "is 64 characters, at most 63 allowed"},
      {"a b", "has ' ' at position 2 (allowed: letters, digits, '-', '_', '.')"},
  };
  for (const auto& [name, why] : cases) {
    auto r = names::check(Kind::secret, name);
    ASSERT_FALSE(r) << name;
    EXPECT_EQ(r.error(), names::NameError::invalid_name);
    EXPECT_EQ(r.error().detail(), "secret name '" + name + "' " + why);
    EXPECT_EQ(names::problem(Kind::secret, name), why);
  }
  auto upper = names::check(Kind::operator_name, "Alice");
  ASSERT_FALSE(upper);
  EXPECT_EQ(upper.error().detail(),
            "operator name 'Alice' has upper case letters (operator names are lower case)");
  EXPECT_TRUE(names::check(Kind::node, "Alice"));
}

}  // namespace
