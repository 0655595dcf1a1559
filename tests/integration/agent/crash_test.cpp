// Crash consistency: labd is killed with SIGKILL at random points while bundles stream in
// (start-up and unseal, long-poll, apply transaction, rendering), 200 times. After every kill
// the cache opens with the TPM-sealed key, verifies (stored envelope signature and the rows
// derived from it agree), and holds the last revision the agent acknowledged or a newer one.
#include "agent/daemon/node.hpp"
#include "tests/integration/agent/labd_fixture.hpp"
#include "tests/unit/agent/fake_coordinator.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <random>
#include <thread>

namespace {

using namespace lab::tests;
namespace daemon = lab::agent::daemon;

TEST(LabdCrash, KilledWhileBundlesStreamInTheCacheHoldsTheLastAcknowledgedRevision) {
  LAB_REQUIRE_PROGRAM("swtpm");
  FakeCoordinator coord;
  LabdNode node;
  ASSERT_EQ(node.labd({"join", coord.join_string()}).exit_code, 0);
  const auto settings = node.settings();

  std::atomic<bool> publishing{true};
  std::thread publisher([&] {
    for (int i = 1; publishing.load() && i < 1'000'000; ++i) {
      lab::shared::labels::LabelSet labels;
      for (int k = 0; k < 20; ++k)
        labels.emplace("key-" + std::to_string(k), "value-" + std::to_string(i));
      coord.publish(labels, {{"pw", "secret-" + std::to_string(i)}});
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });

  // How long a start takes to its first applied bundle here (sanitizers, a loaded machine):
  // kills land uniformly in that window plus half a second (at most 1.5 s, so 200 kills fit the
  // time limit), so some hit start-up (unseal, TLS) and the rest hit applying and rendering
  // while bundles keep coming.
  const auto t0 = std::chrono::steady_clock::now();
  {
    auto agent = node.start();
    ASSERT_TRUE(
        wait_until([&] { return std::filesystem::exists(node.run_dir() / "labels.json"); }, 60s))
        << agent.output();
    agent.signal(SIGKILL);
    agent.wait(10s);
  }
  const auto window =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  const auto seed = std::random_device{}();
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::int64_t> delay_ms(
      0, std::min<std::int64_t>(window.count() + 500, 1500));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(9);
  int kills = 0;
  std::int64_t highest = 0;
  for (; kills < 200 && std::chrono::steady_clock::now() < deadline; ++kills) {
    auto agent = node.start();
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    agent.signal(SIGKILL);
    agent.wait(10s);
    // The agent is dead: every `since` it sent names a revision it had committed.
    const std::int64_t acknowledged = coord.acknowledged();

    auto opened = daemon::open_node(settings);
    ASSERT_TRUE(opened) << "kill " << kills << " (seed " << seed
                        << "): " << opened.error().message();
    auto verified = opened->cache->verify();
    ASSERT_TRUE(verified) << "kill " << kills << " (seed " << seed
                          << "): " << verified.error().message();
    auto revision = opened->cache->revision();
    ASSERT_TRUE(revision);
    EXPECT_GE(*revision, acknowledged) << "kill " << kills << " (seed " << seed << ")";
    EXPECT_GE(*revision, highest) << "a revision went backwards at kill " << kills;
    highest = std::max(highest, *revision);
  }
  publishing = false;
  publisher.join();
  EXPECT_EQ(kills, 200) << "ran out of time (seed " << seed << ")";
  EXPECT_GT(highest, 0) << "no bundle was ever applied between kills";
  std::cout << "window " << window.count() << " ms, kills " << kills << ", last revision "
            << highest << ", published " << coord.revision() << ", seed " << seed << "\n";
}

}  // namespace
