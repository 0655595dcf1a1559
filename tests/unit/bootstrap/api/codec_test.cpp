#include "bootstrap/api/codec.hpp"

#include "shared/json/json.hpp"

#include <gtest/gtest.h>

namespace lab::bootstrap::api {
namespace {

namespace json = boost::json;
using coordinator::CoordinatorError;

json::object parse(std::string_view text) {
  return shared::json::parse_object(text).value();
}

TEST(Codec, TokenSpecFromJson) {
  auto spec = token_spec_from_json(parse(
      R"({"labels":{"role":"web"},"ttl":"15m","bind":{"mac":"52:54:00:00:00:01"},"description":"d"})"));
  ASSERT_TRUE(spec) << spec.error().detail();
  EXPECT_EQ(spec->labels.at("role"), "web");
  EXPECT_EQ(spec->ttl, std::chrono::minutes(15));
  EXPECT_EQ(spec->binding.mac, "52:54:00:00:00:01");
  EXPECT_TRUE(spec->binding.ip.empty());
  EXPECT_EQ(spec->description, "d");

  auto defaults = token_spec_from_json(parse("{}"));
  ASSERT_TRUE(defaults);
  EXPECT_EQ(defaults->ttl, std::chrono::hours(1));
  EXPECT_EQ(defaults->kind, "join");
}

TEST(Codec, TokenSpecErrorsNameTheField) {
  struct Case {
    const char* body;
    const char* field;
  };
  for (const auto& c :
       {Case{R"({"ttl":"forever"})", "ttl"}, Case{R"({"ttl":"0s"})", "ttl"},
        Case{R"({"ttl":5})", "ttl"}, Case{R"({"labels":[]})", "labels"},
        Case{R"({"labels":{"role":7}})", "labels.role"},
        Case{R"({"labels":{"bad key":"x"}})", "labels"}, Case{R"({"bind":"mac"})", "bind"},
        Case{R"({"description":[]})", "description"}}) {
    auto spec = token_spec_from_json(parse(c.body));
    ASSERT_FALSE(spec) << c.body;
    EXPECT_NE(spec.error().detail().find(c.field), std::string::npos)
        << c.body << " -> " << spec.error().detail();
    EXPECT_EQ(status_for(spec.error()).status, 400U) << c.body;
  }
}

TEST(Codec, LabelPatchNeedsSomethingToChange) {
  auto p = label_patch_from_json(parse(R"({"set":{"a":"1"},"remove":["b"]})"));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->set.at("a"), "1");
  EXPECT_EQ(p->remove, std::vector<std::string>{"b"});
  EXPECT_FALSE(label_patch_from_json(parse("{}")));
  EXPECT_FALSE(label_patch_from_json(parse(R"({"remove":[1]})")));
  EXPECT_FALSE(label_patch_from_json(parse(R"({"remove":["bad key"]})")));
}

TEST(Codec, GroupFromJson) {
  auto g = group_from_json("web", parse(R"({"selector":"role=web","includes":["a"]})"));
  ASSERT_TRUE(g);
  EXPECT_EQ(g->name, "web");
  EXPECT_EQ(g->selector, "role=web");
  EXPECT_EQ(g->includes, std::vector<std::string>{"a"});
  EXPECT_TRUE(g->excludes.empty());
  EXPECT_FALSE(group_from_json("web", parse(R"({"includes":"a"})")));
}

TEST(Codec, TokenFailuresAreOneAnswerAndInternalsAreHidden) {
  for (auto e : {CoordinatorError::token_unknown, CoordinatorError::token_expired,
                 CoordinatorError::token_used, CoordinatorError::token_revoked,
                 CoordinatorError::token_binding}) {
    const auto s = status_for(Error(e, "precise reason"));
    EXPECT_EQ(s.status, 403U);
    EXPECT_EQ(s.code, "invalid_token");
    EXPECT_FALSE(s.show_detail);
  }
  EXPECT_EQ(status_for(Error(CoordinatorError::not_found, "x")).status, 404U);
  EXPECT_EQ(status_for(Error(CoordinatorError::group_cycle, "a -> b -> a")).status, 409U);
  EXPECT_TRUE(status_for(Error(CoordinatorError::group_cycle, "a -> b -> a")).show_detail);
  const auto store = status_for(Error(CoordinatorError::store_failed, "INSERT INTO …"));
  EXPECT_EQ(store.status, 503U);
  EXPECT_FALSE(store.show_detail);
  const auto other =
      status_for(Error(boost::system::errc::make_error_code(boost::system::errc::io_error), "x"));
  EXPECT_EQ(other.status, 500U);
  EXPECT_FALSE(other.show_detail);
}

TEST(Codec, ErrorBodyIsEscapedJson) {
  EXPECT_EQ(error_body("say \"hi\"", "c"), R"({"error":"say \"hi\"","code":"c"})");
}

TEST(Codec, NodeJsonCarriesEveryField) {
  coordinator::NodeInfo n;
  n.id = "id1";
  n.name = "web-1";
  n.labels = {{"role", "web"}};
  n.groups = {"g"};
  const auto o = to_json(n);
  for (const char* key : {"id", "name", "macs", "state", "labels", "groups", "facts", "created_at",
                          "last_seen", "agent_version", "cert_serial", "cert_expires_at"}) {
    EXPECT_TRUE(o.contains(key)) << key;
  }
  EXPECT_EQ(o.at("labels").at("role").as_string(), "web");
}

}  // namespace
}  // namespace lab::bootstrap::api
