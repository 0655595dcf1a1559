#include "tests/unit/bootstrap/coordinator/fixture.hpp"

namespace lab::bootstrap::coordinator::testing {
namespace {

std::vector<std::string> member_names(Coordinator& c, const std::string& group) {
  std::vector<std::string> out;
  for (const auto& n : c.group_members(group).value())
    out.push_back(n.name);
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(CoordinatorTest, GroupMembershipFollowsSelectorIncludesAndExcludes) {
  join("web1", {{"role", "web"}, {"env", "prod"}});
  join("web2", {{"role", "web"}, {"env", "dev"}});
  join("db1", {{"role", "db"}, {"env", "prod"}});
  join("gpu1", {{"role", "ml"}, {"gpu", "true"}});

  ASSERT_TRUE(c().set_group({"web", "role=web", {}, {}}, operator_));
  ASSERT_TRUE(c().set_group({"db", "role = db", {}, {}}, operator_));
  ASSERT_TRUE(c().set_group({"dev", "env=dev", {}, {}}, operator_));
  // Only includes: no selector, so no direct members.
  ASSERT_TRUE(c().set_group({"services", "", {"web", "db"}, {"dev"}}, operator_));
  ASSERT_TRUE(c().set_group({"gpus", "gpu", {}, {}}, operator_));

  EXPECT_EQ(member_names(c(), "web"), (std::vector<std::string>{"web1", "web2"}));
  EXPECT_EQ(member_names(c(), "services"), (std::vector<std::string>{"db1", "web1"}));
  EXPECT_EQ(member_names(c(), "gpus"), (std::vector<std::string>{"gpu1"}));
  EXPECT_EQ(c().get_node("web2").value().groups, (std::vector<std::string>{"dev", "web"}));
  EXPECT_EQ(c().get_node("web1").value().groups, (std::vector<std::string>{"services", "web"}));

  auto groups = c().list_groups().value();
  ASSERT_EQ(groups.size(), 5U);
  EXPECT_EQ(groups[0].name, "db");
  EXPECT_EQ(groups[0].selector, "role=db");  // canonical form

  // Labels move nodes between groups.
  ASSERT_TRUE(c().label_node("web2", {{"env", "prod"}}, {}, operator_));
  EXPECT_EQ(member_names(c(), "services"), (std::vector<std::string>{"db1", "web1", "web2"}));
}

TEST_F(CoordinatorTest, GroupCycleIsRefusedAndNamed) {
  ASSERT_TRUE(c().set_group({"a", "x=1", {}, {}}, operator_));
  ASSERT_TRUE(c().set_group({"b", "", {"a"}, {}}, operator_));
  ASSERT_TRUE(c().set_group({"c", "", {"b"}, {}}, operator_));
  auto r = c().set_group({"a", "x=1", {"c"}, {}}, operator_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), CoordinatorError::group_cycle);
  EXPECT_EQ(r.error().detail(), "a -> c -> b -> a");

  r = c().set_group({"a", "", {}, {"b"}}, operator_);  // through an exclude too
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().detail(), "a -> b -> a");

  r = c().set_group({"d", "", {"d"}, {}}, operator_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), CoordinatorError::group_cycle);
  EXPECT_EQ(r.error().detail(), "d -> d");
}

TEST_F(CoordinatorTest, GroupErrorsNameTheProblem) {
  auto r = c().set_group({"web", "role in (web", {}, {}}, operator_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), CoordinatorError::invalid_argument);
  EXPECT_NE(r.error().detail().find("column"), std::string::npos) << r.error().detail();

  r = c().set_group({"bad name!", "", {}, {}}, operator_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), CoordinatorError::invalid_argument);

  r = c().set_group({"x", "", {"missing"}, {}}, operator_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), CoordinatorError::invalid_argument);
  EXPECT_NE(r.error().detail().find("missing"), std::string::npos);

  ASSERT_TRUE(c().set_group({"base", "a=b", {}, {}}, operator_));
  ASSERT_TRUE(c().set_group({"top", "", {"base"}, {}}, operator_));
  auto d = c().delete_group("base", operator_);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error(), CoordinatorError::invalid_argument);
  ASSERT_TRUE(c().delete_group("top", operator_));
  ASSERT_TRUE(c().delete_group("base", operator_));
  EXPECT_EQ(c().delete_group("base", operator_).error(), CoordinatorError::not_found);
  EXPECT_EQ(c().group_members("base").error(), CoordinatorError::not_found);
}

}  // namespace
}  // namespace lab::bootstrap::coordinator::testing
