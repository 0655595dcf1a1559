#include "shared/text/suggest.hpp"

#include <gtest/gtest.h>

namespace {

using lab::shared::text::closest;
using lab::shared::text::edit_distance;

TEST(Suggest, EditDistanceCountsInsertionsDeletionsSubstitutionsAndSwaps) {
  EXPECT_EQ(edit_distance("list", "list"), 0U);
  EXPECT_EQ(edit_distance("lsit", "list"), 1U);  // two neighbours swapped
  EXPECT_EQ(edit_distance("lsit", "set"), 2U);
  EXPECT_EQ(edit_distance("ab", "ba"), 1U);
  EXPECT_EQ(edit_distance("lst", "list"), 1U);
  EXPECT_EQ(edit_distance("", "abc"), 3U);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3U);
}

TEST(Suggest, ClosestIsTheNearestWithinTheLimitOrNothing) {
  const std::vector<std::string> verbs = {"list", "show", "label", "revoke"};
  EXPECT_EQ(closest("lsit", verbs), "list");
  EXPECT_EQ(closest("lsit", {"set", "list"}), "list");  // the swap is nearer than "set"
  EXPECT_EQ(closest("shwo", verbs), "show");
  EXPECT_EQ(closest("lable", verbs), "label");
  EXPECT_EQ(closest("delete", verbs), "");
  EXPECT_EQ(closest("revoek", verbs, 1), "revoke");
  EXPECT_EQ(closest("rvoe", verbs, 1), "");  // two deletions
  EXPECT_EQ(closest("anything", {}), "");
}

}  // namespace
