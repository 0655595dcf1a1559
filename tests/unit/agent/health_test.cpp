// The health pillar as labd runs it: a node without checks or configuration runs holds no
// thread for them, and the reporter starts with the first change to report.
#include "agent/daemon/health.hpp"

#include "shared/crypto/random.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <chrono>

namespace {

namespace cache = lab::agent::cache;
namespace crypto = lab::shared::crypto;
namespace keystore = lab::agent::keystore;
namespace localapi = lab::agent::localapi;
namespace proto = lab::shared::protocol;
using lab::agent::daemon::Health;
using namespace std::chrono_literals;

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class HealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto raw = crypto::random_bytes(32).value();
    auto key = std::make_shared<const keystore::DataKey>(
        keystore::DataKey::from_bytes(raw, keystore::Protection::file).value());
    cache_ = cache::Cache::open(dir_ / "cache.db", key).value();
    state_ = std::make_shared<localapi::State>(
        cache::View{}, crypto::X25519PrivateKey::generate().value(), "file");
  }
  Health::Options options() {
    return {.base_facts = {},
            .config_run_file = dir_ / "last_run_summary.yaml",
            .config_run_every = std::chrono::seconds(1),
            .report_interval = std::chrono::seconds(10)};
  }
  // Runs the io_context (the summary file's timer) until `condition` or `timeout`.
  bool run_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
      if (std::chrono::steady_clock::now() >= until)
        return false;
      io_.run_for(100ms);
    }
    return true;
  }

  lab::tests::TempDir dir_{"lab-health"};
  boost::asio::io_context io_;
  std::unique_ptr<cache::Cache> cache_;
  std::shared_ptr<localapi::State> state_;
  lab::shared::log::Logger log_{"test"};
};

TEST_F(HealthTest, NoReporterUntilAConfigurationRunAppears) {
  Health health(io_, *cache_, state_, options(), unix_now, log_);
  health.start({});
  EXPECT_FALSE(run_until([&] { return health.reporting(); }, 1500ms))
      << "nothing to report: no thread";
  dir_.write("last_run_summary.yaml", "time: {last_run: 1733486410}\n");
  ASSERT_TRUE(run_until([&] { return health.reporting(); }, 5s));
  EXPECT_EQ(state_->config_run().at("last_run").as_int64(), 1733486410);
  EXPECT_EQ(health.report_extras().at("config_run").as_object().at("last_run").as_int64(),
            1733486410);
  health.stop();
  EXPECT_TRUE(health.join_for(5s));
}

TEST_F(HealthTest, TheFirstResultOfTheFirstCheckStartsTheReporter) {
  Health health(io_, *cache_, state_, options(), unix_now, log_);
  health.start({});
  health.set_checks({});
  EXPECT_FALSE(health.reporting()) << "the same empty set again changes nothing";
  proto::Check check;
  check.name = "ok";
  check.command = {"true"};
  check.interval_seconds = 60;
  check.timeout_seconds = 5;
  check.rise = 1;
  check.fall = 1;
  check.user = lab::tests::is_root() ? "nobody" : lab::tests::run({"id", "-un"}).output;
  while (!check.user.empty() && check.user.back() == '\n')
    check.user.pop_back();
  health.set_checks({check});
  ASSERT_TRUE(lab::tests::wait_until([&] { return health.reporting(); }, 5s));
  ASSERT_TRUE(lab::tests::wait_until(
      [&] { return !state_->checks().empty() && state_->checks()[0].status == "passing"; }, 5s));
  // Kept in the cache for the next start, which restores them.
  auto kept = cache_->check_results();
  ASSERT_TRUE(kept);
  ASSERT_EQ(kept->size(), 1U);
  health.stop();
  EXPECT_TRUE(health.join_for(5s));
}

TEST_F(HealthTest, StatesOfChecksThatAreGoneLeaveTheCacheAtStart) {
  proto::CheckResult old;
  old.name = "gone";
  old.status = "failing";
  ASSERT_TRUE(cache_->store_check_results({old}));
  Health health(io_, *cache_, state_, options(), unix_now, log_);
  EXPECT_EQ(state_->checks().size(), 1U) << "served until the checks are known";
  health.start({});
  EXPECT_TRUE(state_->checks().empty());
  auto kept = cache_->check_results();
  ASSERT_TRUE(kept);
  EXPECT_TRUE(kept->empty());
  EXPECT_FALSE(health.reporting()) << "the syncer's first report carries the start";
  health.stop();
  EXPECT_TRUE(health.join_for(5s));
}

}  // namespace
