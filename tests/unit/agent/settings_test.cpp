// labd.toml, LABD_* variables and flags: precedence, validation, and the error messages.
#include "agent/daemon/settings.hpp"

#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

namespace {

using namespace lab::agent::daemon;
using lab::tests::TempDir;
using namespace std::chrono_literals;

TEST(Settings, DefaultsAreTheProductionPaths) {
  TempDir dir;
  SettingSources src;
  src.config_file = dir.write("labd.toml", "");
  auto s = load_settings(src);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->data_dir, "/var/lib/labd");
  EXPECT_EQ(s->socket, "/run/lab/labd.sock");
  EXPECT_EQ(s->tcti, "device:/dev/tpmrm0");
  EXPECT_EQ(s->key_protection, lab::agent::keystore::Protection::tpm);
  EXPECT_TRUE(s->tpm_pcrs.empty());
  EXPECT_EQ(s->render.labels_json, "/run/lab/labels.json");
  EXPECT_EQ(s->render.secrets_dir, "/run/lab/secrets");
  EXPECT_EQ(s->poll_wait, 55s);
  EXPECT_EQ(s->cache_file(), "/var/lib/labd/cache.db");
}

TEST(Settings, FileThenEnvironmentThenFlags) {
  TempDir dir;
  SettingSources src;
  src.config_file = dir.write("labd.toml", R"(
data_dir = "/srv/labd"
socket = "/srv/labd.sock"
key_protection = "file"
tcti = "swtpm:path=/tmp/tpm.sock"
tpm_pcrs = [7, 16]
[render]
labels_json = "/srv/labels.json"
facts_file = ""
[sync]
wait = "20s"
backoff_cap = "2m"
[[secret_access]]
name = "db"
uids = [1000]
gids = [33]
)");
  src.environment = {{"LABD_DATA_DIR", "/env/labd"}, {"LABD_RENDER_SECRETS_DIR", "/env/secrets"}};
  src.flags = {{"data_dir", "/flag/labd", "--data-dir"}};
  auto s = load_settings(src);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->data_dir, "/flag/labd");
  EXPECT_EQ(s->socket, "/srv/labd.sock");
  EXPECT_EQ(s->render.secrets_dir, "/env/secrets");
  EXPECT_EQ(s->render.labels_json, "/srv/labels.json");
  EXPECT_TRUE(s->render.facts_file.empty());
  EXPECT_EQ(s->key_protection, lab::agent::keystore::Protection::file);
  EXPECT_EQ(s->tpm_pcrs, (std::vector<std::uint32_t>{7, 16}));
  EXPECT_EQ(s->poll_wait, 20s);
  EXPECT_EQ(s->backoff_cap, 120s);
  ASSERT_EQ(s->secret_access.size(), 1U);
  EXPECT_EQ(s->secret_access[0].name, "db");
  EXPECT_EQ(s->secret_access[0].uids, std::vector<uid_t>{1000});
  EXPECT_EQ(s->secret_access[0].gids, std::vector<gid_t>{33});
  auto k = s->keystore_options();
  EXPECT_EQ(k.state_dir, "/flag/labd");
  EXPECT_EQ(k.tcti, "swtpm:path=/tmp/tpm.sock");
}

TEST(Settings, ConfigFileFromTheEnvironment) {
  TempDir dir;
  SettingSources src;
  src.environment = {{"LABD_CONFIG", dir.write("x.toml", "socket = \"/x.sock\"\n").string()}};
  auto s = load_settings(src);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->socket, "/x.sock");
}

TEST(Settings, BadValuesAreRefusedWithTheirPlace) {
  TempDir dir;
  auto load = [&](const std::string& toml) {
    SettingSources src;
    src.config_file = dir.write("labd.toml", toml);
    return load_settings(src);
  };
  auto unknown = load("\n\ndata_dri = \"/x\"\n");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message().find("labd.toml:3"), std::string::npos)
      << unknown.error().message();
  EXPECT_FALSE(load("key_protection = \"none\"\n"));
  EXPECT_FALSE(load("tpm_pcrs = [24]\n"));
  EXPECT_FALSE(load("tcti = \"\"\n"));
  EXPECT_FALSE(load("[sync]\nwait = \"2m\"\n"));
  EXPECT_FALSE(load("[[secret_access]]\nuids = [1]\n"));
  SettingSources missing;
  missing.config_file = dir / "nope.toml";
  EXPECT_FALSE(load_settings(missing));
}

}  // namespace
