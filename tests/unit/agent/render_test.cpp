// Rendered files from a real cache view: content, modes, removal of secrets no longer held.
#include "agent/render/render.hpp"

#include "tests/support/temp_dir.hpp"
#include "tests/unit/agent/bundle_maker.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>

namespace {

using namespace lab::agent::render;
namespace cache = lab::agent::cache;
using lab::tests::BundleMaker;
using lab::tests::read_file;
using lab::tests::TempDir;

cache::View view_of(const BundleMaker& maker, std::int64_t revision,
                    lab::shared::labels::LabelSet labels,
                    const std::map<std::string, std::string>& secrets) {
  const auto b = maker.bundle(revision, std::move(labels), secrets);
  cache::View v;
  v.node_id = b.node_id;
  v.revision = b.revision;
  v.labels = b.labels;
  for (const auto& s : b.secrets) {
    v.secrets.emplace(
        s.name,
        cache::CachedSecret{s.version, lab::shared::crypto::base64url_decode(s.sealed).value()});
  }
  return v;
}

mode_t mode_of(const std::filesystem::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

TEST(Render, EnvNamesAreUpperCasedWithNonAlnumAsUnderscore) {
  EXPECT_EQ(env_name("role"), "LAB_LABEL_ROLE");
  EXPECT_EQ(env_name("example.com/rack-id"), "LAB_LABEL_EXAMPLE_COM_RACK_ID");
}

TEST(Render, WritesEveryOutputWithTheRightModes) {
  TempDir dir("lab-render");
  BundleMaker maker;
  Paths paths{dir / "run/labels.json", dir / "run/labels.env", dir / "run/secrets",
              dir / "facts.d/lab.json"};
  auto v = view_of(maker, 12, {{"role", "web"}, {"example.com/rack", "r1"}},
                   {{"db-password", "hunter2"}, {"api.token", "t0k"}});
  ASSERT_TRUE(render(paths, v, maker.sealing_key()));

  EXPECT_EQ(read_file(paths.labels_json), R"({"example.com/rack":"r1","role":"web"})"
                                          "\n");
  EXPECT_EQ(read_file(paths.env_file),
            "LAB_NODE_ID=n-0001\nLAB_REVISION=12\nLAB_LABEL_EXAMPLE_COM_RACK=r1\n"
            "LAB_LABEL_ROLE=web\n");
  EXPECT_EQ(read_file(paths.secrets_dir / "db-password"), "hunter2");
  EXPECT_EQ(read_file(paths.secrets_dir / "api.token"), "t0k");
  EXPECT_EQ(mode_of(paths.secrets_dir / "db-password"), 0400U);
  EXPECT_EQ(mode_of(paths.secrets_dir), 0700U);
  EXPECT_EQ(read_file(paths.facts_file),
            R"({"lab_labels":{"example.com/rack":"r1","role":"web"},"lab_revision":12})"
            "\n");

  // The next revision drops a secret: its file goes.
  auto next = view_of(maker, 13, {{"role", "db"}}, {{"api.token", "t1k"}});
  ASSERT_TRUE(render(paths, next, maker.sealing_key()));
  EXPECT_FALSE(std::filesystem::exists(paths.secrets_dir / "db-password"));
  EXPECT_EQ(read_file(paths.secrets_dir / "api.token"), "t1k");
  // No temporary files are left behind.
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir / "run"))
    ++n;
  EXPECT_EQ(n, 3U);
}

TEST(Render, YamlFactsAndDisabledOutputs) {
  TempDir dir("lab-render-yaml");
  BundleMaker maker;
  Paths paths{{}, {}, {}, dir / "lab.yaml"};
  ASSERT_TRUE(render(paths, view_of(maker, 2, {{"role", "web"}}, {}), maker.sealing_key()));
  EXPECT_EQ(read_file(paths.facts_file), "lab_revision: 2\nlab_labels:\n  \"role\": \"web\"\n");
  EXPECT_FALSE(std::filesystem::exists(dir / "labels.json"));
}

TEST(Render, RefusesSecretNamesThatEscapeTheDirectory) {
  TempDir dir("lab-render-bad");
  BundleMaker maker;
  Paths paths{{}, {}, dir / "secrets", {}};
  auto v = view_of(maker, 2, {}, {{"../etc/passwd", "x"}});
  auto r = render(paths, v, maker.sealing_key());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), RenderError::bad_secret_name);
  EXPECT_FALSE(std::filesystem::exists(dir / "etc"));
}

}  // namespace
