#include "bootstrap/api/routes.hpp"

#include <gtest/gtest.h>

namespace lab::bootstrap::api {
namespace {

TEST(Routes, MatchesFixedAndParameterisedPaths) {
  auto m = match_route("POST", "/v1/join");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->id, RouteId::join);

  m = match_route("PATCH", "/v1/nodes/abc123/labels");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->id, RouteId::node_labels);
  ASSERT_EQ(m.params.size(), 1U);
  EXPECT_EQ(m.params[0], "abc123");

  m = match_route("GET", "/v1/machines/52:54:00:12:34:56/timeline");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->id, RouteId::machine_timeline);
  EXPECT_EQ(m.params[0], "52:54:00:12:34:56");
}

TEST(Routes, HeadIsAnsweredLikeGet) {
  auto m = match_route("HEAD", "/v1/tokens");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->id, RouteId::tokens_list);
}

TEST(Routes, AKnownPathWithAnotherMethodListsTheAllowedOnes) {
  auto m = match_route("POST", "/v1/groups/web");
  EXPECT_EQ(m.route, nullptr);
  EXPECT_TRUE(m.path_known);
  EXPECT_EQ(m.allowed, "PUT, DELETE");
}

TEST(Routes, UnknownEmptyAndMalformedPathsMatchNothing) {
  for (const char* path : {"", "v1/join", "/", "/v1", "/v1/nodes/", "/v1/nodes//labels",
                           "/v1/join/extra", "/v1/tokens/a/b", "//v1/join"}) {
    auto m = match_route("GET", path);
    EXPECT_EQ(m.route, nullptr) << path;
  }
  auto m = match_route("GET", "/v1/nodes/");
  EXPECT_FALSE(m.path_known);
}

TEST(Routes, EveryPatternIsUniquePerMethod) {
  const auto& table = routes();
  for (std::size_t i = 0; i < table.size(); ++i) {
    for (std::size_t j = i + 1; j < table.size(); ++j) {
      EXPECT_FALSE(table[i].method == table[j].method && table[i].pattern == table[j].pattern)
          << table[i].pattern;
    }
  }
}

}  // namespace
}  // namespace lab::bootstrap::api
