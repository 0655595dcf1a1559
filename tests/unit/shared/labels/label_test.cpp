#include "shared/labels/label.hpp"

#include <gtest/gtest.h>

namespace {

using namespace lab::shared::labels;

TEST(LabelKey, AcceptsKubernetesValidKeys) {
  for (const char* k :
       {"role", "a", "Role_1", "app.kubernetes.io/name", "lab.dev/rack-7", "x-y.z", "9"}) {
    EXPECT_TRUE(validate_key(k)) << k;
  }
  EXPECT_TRUE(validate_key(std::string(63, 'a')));
  EXPECT_TRUE(validate_key(std::string(253, 'a') + "/" + std::string(63, 'b')));
}

TEST(LabelKey, RejectsInvalidKeysWithReason) {
  struct Case {
    std::string key;
    std::string why;
  };
  const Case cases[] = {
      {"", "must not be empty"},
      {std::string(64, 'a'), "at most 63"},
      {"-role", "must start"},
      {"role-", "must end"},
      {"ro le", "has ' ' at position 3"},
      {"a/b/c", "name has '/'"},
      {"Example.com/x", "prefix has 'E'"},
      {"/x", "must not be empty"},
      {"x/", "name must not be empty"},
      {"a..b/x", "empty DNS label"},
      {"-a.com/x", "must not start or end with '-'"},
      {std::string(254, 'a') + "/x", "longer than 253"},
  };
  for (const auto& c : cases) {
    auto r = validate_key(c.key);
    ASSERT_FALSE(r) << c.key;
    EXPECT_TRUE(r.error() == LabelError::invalid_key);
    EXPECT_NE(r.error().detail().find(c.why), std::string::npos)
        << c.key << " → " << r.error().detail();
  }
}

TEST(LabelValue, RulesMatchKubernetes) {
  EXPECT_TRUE(validate_value(""));
  EXPECT_TRUE(validate_value("prod"));
  EXPECT_TRUE(validate_value("v1.2_3-x"));
  EXPECT_FALSE(validate_value("a/b"));
  EXPECT_FALSE(validate_value("-x"));
  EXPECT_FALSE(validate_value(std::string(64, 'v')));
  EXPECT_TRUE(validate_value("x").has_value());
  EXPECT_TRUE(validate_value("with space").error() == LabelError::invalid_value);
}

TEST(LabelList, ParsesAndFormats) {
  auto l = parse_list("role=web,env=prod,empty=");
  ASSERT_TRUE(l) << l.error().message();
  EXPECT_EQ(l->size(), 3u);
  EXPECT_EQ(l->at("empty"), "");
  EXPECT_EQ(format_list(*l), "empty=,env=prod,role=web");
  EXPECT_TRUE(parse_list("").value().empty());
}

TEST(LabelList, RejectsMalformedLists) {
  EXPECT_TRUE(parse_list("role").error() == LabelError::invalid_list);
  EXPECT_TRUE(parse_list("a=1,,b=2").error() == LabelError::invalid_list);
  EXPECT_TRUE(parse_list("a=1,a=2").error() == LabelError::invalid_list);
  EXPECT_TRUE(parse_list("bad key=1").error() == LabelError::invalid_key);
  EXPECT_TRUE(parse_list("k=bad value").error() == LabelError::invalid_value);
}

}  // namespace
