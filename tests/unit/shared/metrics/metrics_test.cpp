#include "shared/metrics/metrics.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <thread>

namespace {

namespace m = lab::shared::metrics;

TEST(Metrics, RendersTheTextExpositionFormatInRegistrationOrder) {
  m::Registry r;
  auto& offers = r.counter("lab_dhcp_offers_total", "OFFERs sent.", {"subnet"});
  auto& active = r.gauge("lab_tftp_transfers_active", "Transfers running.");
  auto& commit = r.histogram("lab_dhcp_commit_seconds", "Lease commit latency.", {}, {0.001, 0.01});
  r.gauge_callback("lab_dhcp_pool_in_use", "Addresses leased.", [] { return 7.0; });
  offers.with({"10.0.0.0/24"}).inc();
  offers.with({"10.0.0.0/24"}).inc(2);
  offers.with({"10.1.0.0/24"}).inc();
  active.get().set(3);
  commit.get().observe(0.0005);
  commit.get().observe(0.005);
  commit.get().observe(5);
  EXPECT_EQ(r.render(),
            "# HELP lab_dhcp_offers_total OFFERs sent.\n"
            "# TYPE lab_dhcp_offers_total counter\n"
            "lab_dhcp_offers_total{subnet=\"10.0.0.0/24\"} 3\n"
            "lab_dhcp_offers_total{subnet=\"10.1.0.0/24\"} 1\n"
            "# HELP lab_tftp_transfers_active Transfers running.\n"
            "# TYPE lab_tftp_transfers_active gauge\n"
            "lab_tftp_transfers_active 3\n"
            "# HELP lab_dhcp_commit_seconds Lease commit latency.\n"
            "# TYPE lab_dhcp_commit_seconds histogram\n"
            "lab_dhcp_commit_seconds_bucket{le=\"0.001\"} 1\n"
            "lab_dhcp_commit_seconds_bucket{le=\"0.01\"} 2\n"
            "lab_dhcp_commit_seconds_bucket{le=\"+Inf\"} 3\n"
            "lab_dhcp_commit_seconds_sum 5.0055\n"
            "lab_dhcp_commit_seconds_count 3\n"
            "# HELP lab_dhcp_pool_in_use Addresses leased.\n"
            "# TYPE lab_dhcp_pool_in_use gauge\n"
            "lab_dhcp_pool_in_use 7\n");
}

TEST(Metrics, APartsOwnTextComesInRegistrationOrderAndIsReadAtEachRender) {
  m::Registry r;
  r.counter("lab_a_total", "A.").get().inc();
  int calls = 0;
  r.text([&] {
    ++calls;
    return "# HELP lab_b B.\n# TYPE lab_b gauge\nlab_b " + std::to_string(calls) + "\n";
  });
  r.gauge("lab_c", "C.").get().set(1);
  r.text([] { return std::string(); });  // a part may have nothing to say yet
  EXPECT_EQ(r.render(),
            "# HELP lab_a_total A.\n# TYPE lab_a_total counter\nlab_a_total 1\n"
            "# HELP lab_b B.\n# TYPE lab_b gauge\nlab_b 1\n"
            "# HELP lab_c C.\n# TYPE lab_c gauge\nlab_c 1\n");
  EXPECT_NE(r.render().find("lab_b 2\n"), std::string::npos);
}

TEST(Metrics, LabelValuesAndHelpAreEscaped) {
  m::Registry r;
  r.counter("x_total", "a \\ b\nc", {"path"}).with({"a\"b\\c\nd"}).inc();
  EXPECT_EQ(r.render(),
            "# HELP x_total a \\\\ b\\nc\n# TYPE x_total counter\n"
            "x_total{path=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(Metrics, BadNamesAndDuplicatesAreRefused) {
  m::Registry r;
  EXPECT_THROW(r.counter("1bad_total", "x"), std::invalid_argument);
  EXPECT_THROW(r.counter("no_suffix", "x"), std::invalid_argument);
  EXPECT_THROW(r.gauge("g", "x", {"le"}), std::invalid_argument);
  EXPECT_THROW(r.gauge("g", "x", {"a:b"}), std::invalid_argument);
  EXPECT_THROW(r.histogram("h", "x", {}, {2, 1}), std::invalid_argument);
  r.gauge("g", "x");
  EXPECT_THROW(r.gauge("g", "x"), std::invalid_argument);
}

TEST(Metrics, UpdatesFromManyThreadsAreAllCounted) {
  m::Registry r;
  auto& c = r.counter("n_total", "x").get();
  auto& h = r.histogram("h_seconds", "x", {}, {1}).get();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.inc();
        h.observe(0.5);
      }
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(c.value(), 40000U);
  EXPECT_EQ(h.snapshot().count, 40000U);
  EXPECT_DOUBLE_EQ(h.snapshot().sum, 20000);
}

}  // namespace
