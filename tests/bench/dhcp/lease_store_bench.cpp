// What one durable commit of a batch of leases costs, for the two ways lab could keep them:
// the append-only journal (JournalLeaseStore: write + fdatasync per group) and SQLite in WAL
// mode with synchronous=FULL (one transaction per batch, upsert per lease), the store the
// coordinator uses. Batches are committed one after the other and each is waited for, as the
// DHCP server waits before it sends the batch's ACKs. Run from a Release build on the disk
// the data directory lives on (not tmpfs: an fsync there costs nothing):
//   build/release/tests/bench/dhcp/bench_dhcp_lease_store --benchmark_min_time=2
#include "pxe/dhcp/engine/lease_store.hpp"
#include "shared/sqlite/database.hpp"

#include <benchmark/benchmark.h>

#include <unistd.h>

#include <filesystem>
#include <future>
#include <string>
#include <vector>

namespace {

using lab::pxe::dhcp::engine::JournalLeaseStore;
using lab::pxe::dhcp::engine::Lease;
namespace sqlite = lab::shared::sqlite;

// A scratch directory beside the build tree (same disk as a data directory would be).
std::filesystem::path scratch(const std::string& name) {
  auto dir = std::filesystem::current_path() / ("lease-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir / name;
}

std::vector<Lease> batch_of(std::size_t n, std::uint32_t& next) {
  std::vector<Lease> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i, ++next) {
    Lease l;
    l.ip.value = 0x0a5a0000U + (next % 60000U);
    l.expires = 1'900'000'000 + next;
    l.mac = "02:00:00:00:" + std::to_string((next >> 8) & 0xff) + ":" + std::to_string(next & 0xff);
    l.client = std::string("\x01\x02\x00\x00\x00", 5) + static_cast<char>(next & 0xff);
    out.push_back(std::move(l));
  }
  return out;
}

void journal(benchmark::State& state, JournalLeaseStore::Durability durability) {
  const auto path = scratch("journal");
  std::filesystem::remove(path);
  auto store = JournalLeaseStore::open(path, 0, durability);
  if (!store) {
    state.SkipWithError(store.error().message().c_str());
    return;
  }
  std::uint32_t next = 0;
  const auto n = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    std::promise<bool> done;
    (*store)->commit(batch_of(n, next),
                     [&](const lab::Result<void>& r) { done.set_value(r.has_value()); });
    if (!done.get_future().get()) {
      state.SkipWithError("commit failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  store->reset();
  std::filesystem::remove_all(path.parent_path());
}

void journal_fdatasync(benchmark::State& state) {
  journal(state, JournalLeaseStore::Durability::fdatasync);
}
void journal_write(benchmark::State& state) {
  journal(state, JournalLeaseStore::Durability::write);
}

void sqlite_store(benchmark::State& state, bool full) {
  const auto path = scratch("leases.db");
  std::filesystem::remove(path);
  auto db = sqlite::Database::open(path);
  if (!db) {
    state.SkipWithError(db.error().message().c_str());
    return;
  }
  if (!db->exec("CREATE TABLE lease (ip INTEGER PRIMARY KEY, state INTEGER NOT NULL, "
                "expires INTEGER NOT NULL, mac TEXT NOT NULL, client BLOB NOT NULL)") ||
      (!full && !db->exec("PRAGMA synchronous=NORMAL"))) {
    state.SkipWithError("schema");
    return;
  }
  auto insert = db->prepare(
      "INSERT INTO lease (ip, state, expires, mac, client) VALUES (?, ?, ?, ?, ?) "
      "ON CONFLICT(ip) DO UPDATE SET state = excluded.state, expires = excluded.expires, "
      "mac = excluded.mac, client = excluded.client");
  if (!insert) {
    state.SkipWithError(insert.error().message().c_str());
    return;
  }
  std::uint32_t next = 0;
  const auto n = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    const auto leases = batch_of(n, next);
    auto tx = sqlite::Transaction::begin(*db);
    bool ok = tx.has_value();
    for (const auto& l : leases) {
      if (!ok)
        break;
      insert->reset();
      ok = insert
               ->bind(static_cast<std::int64_t>(l.ip.value), static_cast<int>(l.state), l.expires,
                      l.mac,
                      sqlite::Blob{std::span<const std::uint8_t>(
                          reinterpret_cast<const std::uint8_t*>(l.client.data()), l.client.size())})
               .has_value() &&
           insert->run().has_value();
    }
    if (!ok || !tx->commit()) {
      state.SkipWithError("transaction failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  std::filesystem::remove_all(path.parent_path());
}

void sqlite_wal_full(benchmark::State& state) {
  sqlite_store(state, true);
}
void sqlite_wal_normal(benchmark::State& state) {
  sqlite_store(state, false);
}

BENCHMARK(journal_fdatasync)->Arg(1)->Arg(16)->Arg(64)->UseRealTime();
BENCHMARK(sqlite_wal_full)->Arg(1)->Arg(16)->Arg(64)->UseRealTime();
BENCHMARK(journal_write)->Arg(1)->Arg(16)->Arg(64)->UseRealTime();
BENCHMARK(sqlite_wal_normal)->Arg(1)->Arg(16)->Arg(64)->UseRealTime();

}  // namespace
