#include "pxe/dhcp/engine/lease_store.hpp"

#include "pxe/dhcp/engine/lease_index.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <limits>

// GoogleTest prints a lease that differs as its journal record rather than as raw bytes.
namespace lab::pxe::dhcp::engine {
// NOLINTNEXTLINE(readability-identifier-naming): GoogleTest's printer hook
void PrintTo(const Lease& lease, std::ostream* out) {
  const std::string record = encode_record(lease);
  *out << record.substr(0, record.size() - 1);
}
}  // namespace lab::pxe::dhcp::engine

namespace {

using namespace lab::pxe::dhcp::engine;
using lab::pxe::dhcp::wire::Ipv4;

constexpr std::int64_t kNow = 1'800'000'000;

Lease lease(const char* ip, Lease::State state = Lease::State::bound,
            std::int64_t expires = kNow + 3600) {
  return Lease{.ip = *Ipv4::parse(ip),
               .state = state,
               .expires = expires,
               .mac = "52:54:00:00:00:01",
               .client = std::string("\x01\x52\x54\0\0\0\x01", 7)};
}

void commit_and_wait(LeaseStore& store, std::vector<Lease> records) {
  std::promise<lab::Result<void>> p;
  store.commit(std::move(records), [&](const lab::Result<void>& r) { p.set_value(r); });
  auto r = p.get_future().get();
  ASSERT_TRUE(r) << r.error().message();
}

TEST(DhcpLeaseStore, RecordRoundTripAndChecksum) {
  const Lease l = lease("10.0.0.5");
  const std::string line = encode_record(l);
  ASSERT_EQ(line.back(), '\n');
  auto back = decode_record(std::string_view(line).substr(0, line.size() - 1));
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, l);
  std::string corrupt = line.substr(0, line.size() - 1);
  corrupt[5] = '9';
  EXPECT_FALSE(decode_record(corrupt));
}

TEST(DhcpLeaseStore, JournalSurvivesReopenAndCompacts) {
  lab::tests::TempDir dir;
  const auto path = dir / "leases";
  {
    auto store = JournalLeaseStore::open(path, kNow);
    ASSERT_TRUE(store) << store.error().message();
    EXPECT_TRUE((*store)->load()->empty());
    commit_and_wait(**store, {lease("10.0.0.5"), lease("10.0.0.6")});
    commit_and_wait(**store, {lease("10.0.0.6", Lease::State::released, kNow)});
    commit_and_wait(**store, {lease("10.0.0.7", Lease::State::bound, kNow - 10)});  // expired
    commit_and_wait(**store, {lease("10.0.0.8", Lease::State::declined)});
  }
  auto again = JournalLeaseStore::open(path, kNow);
  ASSERT_TRUE(again);
  auto leases = (*again)->load().value();
  ASSERT_EQ(leases.size(), 2u);
  EXPECT_EQ(leases[0], lease("10.0.0.5"));
  EXPECT_EQ(leases[1].state, Lease::State::declined);
  // Compaction left one line per live address.
  const std::string text = lab::tests::read_file(path);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
}

TEST(DhcpLeaseStore, WriteDurabilityHasTheRecordInTheFileBeforeDone) {
  lab::tests::TempDir dir;
  const auto path = dir / "leases";
  auto store = JournalLeaseStore::open(path, kNow, JournalLeaseStore::Durability::write);
  ASSERT_TRUE(store) << store.error().message();
  commit_and_wait(**store, {lease("10.0.0.5")});
  // Without closing the store (as after kill -9): another reader sees the record.
  EXPECT_EQ(lab::tests::read_file(path), encode_record(lease("10.0.0.5")));
}

TEST(DhcpLeaseStore, TornLastRecordIsDroppedAndTheRestKept) {
  lab::tests::TempDir dir;
  const auto path = dir / "leases";
  {
    auto store = JournalLeaseStore::open(path, kNow);
    ASSERT_TRUE(store);
    commit_and_wait(**store, {lease("10.0.0.5"), lease("10.0.0.6")});
  }
  const std::string torn = encode_record(lease("10.0.0.9"));
  {
    std::ofstream out(path, std::ios::app | std::ios::binary);
    out << torn.substr(0, torn.size() / 2);  // a crash in the middle of a write
  }
  auto again = JournalLeaseStore::open(path, kNow);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ((*again)->recovered_dropped(), 1u);
  EXPECT_EQ((*again)->load()->size(), 2u);
  // The torn bytes are gone, so new records after them stay readable.
  commit_and_wait(**again, {lease("10.0.0.10")});
  again->reset();
  auto third = JournalLeaseStore::open(path, kNow);
  ASSERT_TRUE(third);
  EXPECT_EQ((*third)->recovered_dropped(), 0u);
  EXPECT_EQ((*third)->load()->size(), 3u);
}

// A bad record in the middle (bit rot, a line no encoder of ours wrote, or one too long to be
// a lease) costs that record only: every lease recorded after it survives the restart.
TEST(DhcpLeaseStore, BadRecordsInTheMiddleAreSkippedAndTheRestKept) {
  lab::tests::TempDir dir;
  const auto path = dir / "leases";
  std::string corrupt = encode_record(lease("10.0.0.6"));
  corrupt[9] = '7';  // 10.0.0.6 → 10.0.0.7: the checksum no longer matches
  const std::string torn = encode_record(lease("10.0.0.10"));
  {
    std::ofstream out(path, std::ios::binary);
    out << encode_record(lease("10.0.0.5")) << corrupt << std::string(600, 'a') << '\n'
        << encode_record(lease("10.0.0.8")) << encode_record(lease("10.0.0.9"))
        << torn.substr(0, torn.size() / 2);
  }
  auto store = JournalLeaseStore::open(path, kNow);
  ASSERT_TRUE(store) << store.error().message();
  EXPECT_EQ((*store)->recovered_dropped(), 3u);  // the corrupt one, the long one, the torn tail
  const std::vector<Lease> want = {lease("10.0.0.5"), lease("10.0.0.8"), lease("10.0.0.9")};
  EXPECT_EQ((*store)->load().value(), want);
  store->reset();

  // The compaction kept all three and nothing else.
  auto again = JournalLeaseStore::open(path, kNow);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ((*again)->recovered_dropped(), 0u);
  EXPECT_EQ((*again)->load().value(), want);
}

// The widest record the engine can write (the longest client id it accepts, a 16-byte hardware
// address, an expiry of 19 digits) fits a journal line: it survives a restart.
TEST(DhcpLeaseStore, TheWidestRecordTheEngineWritesSurvivesARestart) {
  lab::tests::TempDir dir;
  const auto path = dir / "leases";
  const Lease wide{.ip = *Ipv4::parse("255.255.255.254"),
                   .state = Lease::State::bound,
                   .expires = std::numeric_limits<std::int64_t>::max(),
                   .mac = "ff:ff:ff:ff:ff:ff:ff:ff:ff:ff:ff:ff:ff:ff:ff:ff",
                   .client = std::string(lab::pxe::dhcp::wire::kMaxClientId, '\xff')};
  {
    auto store = JournalLeaseStore::open(path, kNow);
    ASSERT_TRUE(store) << store.error().message();
    commit_and_wait(**store, {wide, lease("10.0.0.5")});
  }
  auto again = JournalLeaseStore::open(path, kNow);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ((*again)->recovered_dropped(), 0U);
  EXPECT_EQ((*again)->load().value(), (std::vector<Lease>{lease("10.0.0.5"), wide}));
}

TEST(DhcpLeaseStore, ManyConcurrentCommitsAllComplete) {
  lab::tests::TempDir dir;
  auto store = JournalLeaseStore::open(dir / "leases", kNow);
  ASSERT_TRUE(store);
  std::atomic<int> done{0};
  for (int i = 0; i < 200; ++i) {
    const std::string ip = "10.0." + std::to_string(i / 200) + "." + std::to_string(i % 200 + 1);
    (*store)->commit({lease(ip.c_str())}, [&](const lab::Result<void>& r) {
      EXPECT_TRUE(r);
      ++done;
    });
  }
  store->reset();  // drains the queue before closing
  EXPECT_EQ(done.load(), 200);
  auto again = JournalLeaseStore::open(dir / "leases", kNow);
  EXPECT_EQ((*again)->load()->size(), 200u);
}

TEST(DhcpLeaseStore, MemoryStoreKeepsTheNewestRecordPerAddress) {
  MemoryLeaseStore store;
  commit_and_wait(store, {lease("10.0.0.5")});
  commit_and_wait(store, {lease("10.0.0.5", Lease::State::released, kNow)});
  auto leases = store.load().value();
  ASSERT_EQ(leases.size(), 1u);
  EXPECT_EQ(leases[0].state, Lease::State::released);
}

}  // namespace

namespace lab::pxe::dhcp::engine {
namespace {

Lease lease(const char* ip, Lease::State state, std::int64_t expires, const char* mac) {
  return Lease{.ip = *wire::Ipv4::parse(ip),
               .state = state,
               .expires = expires,
               .mac = mac,
               .client = std::string("c-") + mac};
}

TEST(LeaseIndex, KnowsTheLiveAddressOfEachMacOnlyOnceItIsDurable) {
  std::int64_t now = 1000;
  MemoryLeaseStore memory;
  LeaseIndex index([&] { return now; });
  IndexedLeaseStore inner(memory, index);
  // A failing store teaches the index nothing.
  class FailingStore final : public LeaseStore {
   public:
    Result<std::vector<Lease>> load() override { return std::vector<Lease>{}; }
    void commit(std::vector<Lease>, std::function<void(Result<void>)> done) override {
      done(Error(StoreError::sync_failed));
    }
  } failing;
  LeaseIndex broken_index([&] { return now; });
  IndexedLeaseStore broken(failing, broken_index);
  bool failed = false;
  broken.commit({lease("10.0.0.5", Lease::State::bound, 2000, "52:54:00:00:00:01")},
                [&](const Result<void>& r) { failed = !r; });
  EXPECT_TRUE(failed);
  EXPECT_FALSE(broken_index.address_of("52:54:00:00:00:01"));

  bool known_before_done = false;
  inner.commit({lease("10.0.0.5", Lease::State::bound, 2000, "52:54:00:00:00:01"),
                lease("10.0.0.6", Lease::State::observed, 2000, "52:54:00:00:00:02")},
               [&](const Result<void>&) {
                 known_before_done = index.address_of("52:54:00:00:00:01").has_value();
               });
  EXPECT_TRUE(known_before_done);
  EXPECT_EQ(index.address_of("52:54:00:00:00:01"), "10.0.0.5");
  EXPECT_EQ(index.address_of("52:54:00:00:00:02"), "10.0.0.6");
  EXPECT_EQ(index.address_of("52:54:00:00:00:01"), index.address_of("52:54:00:00:00:01"));
  // Released, given to another MAC, moved, expired.
  inner.commit({lease("10.0.0.5", Lease::State::released, 2000, "52:54:00:00:00:01")},
               [](const Result<void>&) {});
  EXPECT_FALSE(index.address_of("52:54:00:00:00:01"));
  inner.commit({lease("10.0.0.6", Lease::State::bound, 2000, "52:54:00:00:00:03")},
               [](const Result<void>&) {});
  EXPECT_FALSE(index.address_of("52:54:00:00:00:02"));
  EXPECT_EQ(index.address_of("52:54:00:00:00:03"), "10.0.0.6");
  inner.commit({lease("10.0.0.7", Lease::State::bound, 2000, "52:54:00:00:00:03")},
               [](const Result<void>&) {});
  EXPECT_EQ(index.address_of("52:54:00:00:00:03"), "10.0.0.7");
  now = 2000;
  EXPECT_FALSE(index.address_of("52:54:00:00:00:03"));

  // A restart: everything the store kept comes back through load().
  LeaseIndex restarted([&] { return 1500; });
  IndexedLeaseStore reopened(memory, restarted);
  ASSERT_TRUE(reopened.load());
  EXPECT_EQ(restarted.address_of("52:54:00:00:00:03"), "10.0.0.7");
}

TEST(LeaseJournal, ObservedRecordsSurviveARestart) {
  tests::TempDir dir("lab-leases-observed");
  {
    auto store = JournalLeaseStore::open(dir / "leases", 1000).value();
    std::promise<Result<void>> done;
    store->commit({lease("10.9.0.5", Lease::State::observed, 5000, "52:54:00:00:00:09")},
                  [&](const Result<void>& r) { done.set_value(r); });
    ASSERT_TRUE(done.get_future().get());
  }
  auto store = JournalLeaseStore::open(dir / "leases", 1000).value();
  auto leases = store->load().value();
  ASSERT_EQ(leases.size(), 1u);
  EXPECT_EQ(leases[0].state, Lease::State::observed);
}

}  // namespace
}  // namespace lab::pxe::dhcp::engine
