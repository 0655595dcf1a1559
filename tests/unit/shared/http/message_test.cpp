#include "shared/http/message/message.hpp"

#include <gtest/gtest.h>

namespace {

using namespace lab::shared::http;

TEST(HttpMessage, HeadersAreCaseInsensitiveAndSetReplaces) {
  Headers h;
  h.add("Content-Type", "a");
  h.add("content-type", "b");
  EXPECT_EQ(h.get("CONTENT-TYPE").value(), "a");
  h.set("Content-Type", "c");
  EXPECT_EQ(h.all().size(), 1u);
  EXPECT_EQ(h.get("content-type").value(), "c");
  EXPECT_FALSE(h.get("x").has_value());
}

TEST(HttpMessage, QueryParsingDecodesAndKeepsOrder) {
  auto q = parse_query("a=1&b=x%20y&c=a+b&d&&e=%zz");
  ASSERT_EQ(q.size(), 5u);
  EXPECT_EQ(q[1].second, "x y");
  EXPECT_EQ(q[2].second, "a b");
  EXPECT_EQ(q[3].first, "d");
  EXPECT_EQ(q[3].second, "");
  EXPECT_EQ(q[4].second, "%zz");  // malformed escapes stay literal
}

TEST(HttpMessage, PercentDecodeRejectsTruncatedEscapes) {
  std::string out;
  EXPECT_TRUE(percent_decode("/a%2Fb", out, false));
  EXPECT_EQ(out, "/a/b");
  EXPECT_FALSE(percent_decode("/a%2", out, false));
  EXPECT_FALSE(percent_decode("/a%", out, false));
  EXPECT_FALSE(percent_decode("/a%g0", out, false));
  EXPECT_TRUE(percent_decode("a+b", out, false));
  EXPECT_EQ(out, "a+b");
}

TEST(HttpMessage, ErrorBodiesAreEscapedJson) {
  auto r = Response::error(400, "bad \"x\"\n");
  EXPECT_EQ(r.body, "{\"error\":\"bad \\\"x\\\"\\n\"}");
  EXPECT_EQ(r.headers.get("Content-Type").value(), "application/json");
  EXPECT_EQ(reason(404), "Not Found");
  EXPECT_EQ(reason(299), "Unknown");
}

}  // namespace
