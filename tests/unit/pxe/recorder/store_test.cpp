// The recorder's timelines on disk: what is appended comes back in order with its details,
// bounded per machine and in total, and a recorder restored from it attributes as before.
#include "pxe/recorder/store.hpp"

#include "pxe/recorder/recorder.hpp"
#include "shared/sqlite/database.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

namespace {

using namespace lab::pxe;
using events::Event;
using events::Kind;
using recorder::TimelineStore;

constexpr std::chrono::system_clock::time_point kT0{std::chrono::milliseconds(1795000000123)};

Event ev(Kind kind, std::string mac, std::string ip = {}, int ms = 0,
         std::vector<std::pair<std::string, std::string>> detail = {}) {
  return Event{kT0 + std::chrono::milliseconds(ms), kind, std::move(mac), std::move(ip),
               std::move(detail)};
}

TEST(TimelineStore, EventsComeBackInOrderWithTheirDetails) {
  lab::tests::TempDir dir;
  {
    auto store = TimelineStore::open(dir / "recorder.db", {});
    ASSERT_TRUE(store) << store.error().message();
    ASSERT_TRUE(store->append({ev(Kind::dhcp_ack, "52:54:00:00:00:01", "10.0.0.5", 0,
                                  {{"arch", "x86-64-uefi"}, {"quote", "a \"b\"\n"}}),
                               ev(Kind::tftp_done, "", "10.0.0.9"),  // no machine: not kept
                               ev(Kind::http_fetch, "52:54:00:00:00:01", "10.0.0.5", 7)}));
  }
  auto store = TimelineStore::open(dir / "recorder.db", {});
  ASSERT_TRUE(store);
  auto events = store->load();
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 2U);
  EXPECT_EQ((*events)[0].kind, Kind::dhcp_ack);
  EXPECT_EQ((*events)[0].at, kT0);
  EXPECT_EQ((*events)[0].ip, "10.0.0.5");
  const std::vector<std::pair<std::string, std::string>> detail = {{"arch", "x86-64-uefi"},
                                                                   {"quote", "a \"b\"\n"}};
  EXPECT_EQ((*events)[0].detail, detail);
  EXPECT_EQ((*events)[1].kind, Kind::http_fetch);
  EXPECT_EQ((*events)[1].at, kT0 + std::chrono::milliseconds(7));
}

TEST(TimelineStore, BoundedPerMachineAndInAllOldestFirst) {
  lab::tests::TempDir dir;
  auto store = TimelineStore::open(dir / "recorder.db", {.events_per_machine = 3, .max_events = 5});
  ASSERT_TRUE(store);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store->append({ev(Kind::dhcp_discover, "52:54:00:00:00:0a", {}, i)}));
  }
  ASSERT_TRUE(store->append({ev(Kind::dhcp_discover, "52:54:00:00:00:0b", {}, 10),
                             ev(Kind::dhcp_discover, "52:54:00:00:00:0b", {}, 11),
                             ev(Kind::dhcp_discover, "52:54:00:00:00:0c", {}, 12)}));
  auto events = store->load();
  ASSERT_TRUE(events);
  // a keeps its newest 3 (2, 3, 4); then b's two and c's one make 6 > 5: a's oldest goes.
  std::vector<std::pair<std::string, int>> got;
  for (const auto& e : *events) {
    got.emplace_back(e.mac.substr(15),
                     static_cast<int>((e.at - kT0) / std::chrono::milliseconds(1)));
  }
  const std::vector<std::pair<std::string, int>> want = {
      {"0a", 3}, {"0a", 4}, {"0b", 10}, {"0b", 11}, {"0c", 12}};
  EXPECT_EQ(got, want);
}

TEST(TimelineStore, RowsALaterVersionWroteAreSkipped) {
  lab::tests::TempDir dir;
  {
    auto store = TimelineStore::open(dir / "recorder.db", {});
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->append({ev(Kind::dhcp_ack, "52:54:00:00:00:01", "10.0.0.5")}));
  }
  {
    auto db = lab::shared::sqlite::Database::open(dir / "recorder.db");
    ASSERT_TRUE(db);
    ASSERT_TRUE(
        db->exec("INSERT INTO events(mac, at_ms, kind, ip, detail) VALUES "
                 "('52:54:00:00:00:01', 1, 'disk-partitioned', '', '[]'),"
                 "('52:54:00:00:00:01', 2, 'dhcp-ack', '', 'not json')"));
  }
  auto store = TimelineStore::open(dir / "recorder.db", {});
  ASSERT_TRUE(store);
  auto events = store->load();
  ASSERT_TRUE(events);
  EXPECT_EQ(events->size(), 1U);
}

TEST(Recorder, RestoredTimelinesAttributeLaterEventsAndAreNotObservedAgain) {
  recorder::Recorder r;
  int observed = 0;
  r.on_kept([&](const Event&) { ++observed; });
  r.restore({ev(Kind::dhcp_ack, "52-54-00-00-00-01", "10.0.0.5"),
             ev(Kind::dhcp_ack, "not a mac", "10.0.0.6")});
  EXPECT_EQ(observed, 0);
  EXPECT_EQ(r.timeline("52:54:00:00:00:01").size(), 1U);
  EXPECT_EQ(r.mac_for_ip("10.0.0.5"), "52:54:00:00:00:01");
  r.record(ev(Kind::tftp_done, "", "10.0.0.5", 100));  // attributed through the restored lease
  EXPECT_EQ(observed, 1);
  ASSERT_EQ(r.timeline("52:54:00:00:00:01").size(), 2U);
  r.record(ev(Kind::tftp_done, "", "10.9.9.9"));  // nobody's: not observed
  EXPECT_EQ(observed, 1);
}

}  // namespace
