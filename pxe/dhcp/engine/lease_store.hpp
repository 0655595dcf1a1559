#pragma once

#include "pxe/dhcp/wire/message.hpp"
#include "shared/errors/error.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace lab::pxe::dhcp::engine {

/// Where the lease store failed; one value per failure site.
enum class StoreError {
  open_failed = 1,  // the journal cannot be opened or created
  read_failed,      // reading the journal at start-up failed
  compact_failed,   // writing the compacted journal failed
  write_failed,     // appending a batch failed
  sync_failed,      // fdatasync of a batch failed: nothing of it may be acknowledged
  closed,           // commit after the store was closed
};
const boost::system::error_category& store_category() noexcept;
inline boost::system::error_code make_error_code(StoreError e) noexcept {
  return {static_cast<int>(e), store_category()};
}

/// The state of one address as the store keeps it; the newest record of an address wins.
struct Lease {
  /// observed: proxy mode saw this MAC use this address (another server leased it); it never
  /// becomes a binding of ours, it only tells the HTTP boot server where the machine is.
  enum class State : std::uint8_t { bound, released, declined, observed };
  wire::Ipv4 ip;
  State state = State::bound;
  std::int64_t expires = 0;  // Unix seconds
  std::string mac;           // "52:54:00:12:34:56"
  std::string client;        // wire::client_key
  friend bool operator==(const Lease&, const Lease&) = default;
};

/// Keeps leases across restarts. The engine holds the live table; a store only makes records
/// durable and gives them back at start-up.
class LeaseStore {
 public:
  virtual ~LeaseStore() = default;
  /// The newest record of every address, as of the last durable commit.
  virtual Result<std::vector<Lease>> load() = 0;
  /// Makes `records` durable, then calls `done` exactly once, from any thread. An ACK waits
  /// for `done`: an address that was acknowledged survives a crash.
  virtual void commit(std::vector<Lease> records, std::function<void(Result<void>)> done) = 0;
};

/// Everything in memory; `done` runs before commit returns. For tests.
class MemoryLeaseStore final : public LeaseStore {
 public:
  Result<std::vector<Lease>> load() override;
  void commit(std::vector<Lease> records, std::function<void(Result<void>)> done) override;

 private:
  std::mutex mutex_;
  std::vector<Lease> leases_;
};

/// An append-only journal file, one checksummed line per record. Opening recovers from a
/// record cut short by a crash (the last line, without its newline, is dropped), skips any
/// other line that does not decode (the records after it are kept), and
/// compacts the file to one record per live address. Commits are group-committed by one
/// writer thread: every batch queued while an fdatasync runs is written and synced together,
/// and only then are their `done` callbacks called (on the writer thread). Durability::write
/// skips the fdatasync but still writes on the writer thread, so that the caller never blocks
/// on the disk.
class JournalLeaseStore final : public LeaseStore {
 public:
  /// How far a commit goes before its `done` runs.
  enum class Durability {
    fdatasync,  // on disk: survives a power loss
    write,      // in the kernel's page cache: survives kill -9 of the process, not a power loss
  };
  /// Opens (or creates) the journal, recovers and compacts it. `now` is in Unix seconds:
  /// records expired before it are dropped by the compaction.
  static Result<std::unique_ptr<JournalLeaseStore>> open(
      const std::filesystem::path& path, std::int64_t now,
      Durability durability = Durability::fdatasync);
  JournalLeaseStore(const JournalLeaseStore&) = delete;
  JournalLeaseStore& operator=(const JournalLeaseStore&) = delete;
  /// Finishes queued commits, then stops the writer thread.
  ~JournalLeaseStore() override;

  Result<std::vector<Lease>> load() override;
  void commit(std::vector<Lease> records, std::function<void(Result<void>)> done) override;

  /// How many records the start-up recovery dropped: lines that do not decode (skipped; the
  /// records after them are kept) and a torn last write.
  [[nodiscard]] std::size_t recovered_dropped() const noexcept { return dropped_; }

 private:
  JournalLeaseStore(int fd, std::vector<Lease> live, std::size_t dropped, Durability durability);
  void writer();
  Result<void> append(const std::string& records);

  struct Batch {
    std::vector<Lease> records;
    std::function<void(Result<void>)> done;
  };
  int fd_;
  Durability durability_;
  std::vector<Lease> live_;
  std::size_t dropped_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Batch> queue_;
  bool closing_ = false;
  std::thread thread_;
};

/// One journal line for `lease` (with its checksum and newline); and back. Exposed for tests.
std::string encode_record(const Lease& lease);
Result<Lease> decode_record(std::string_view line);

}  // namespace lab::pxe::dhcp::engine

template <>
struct boost::system::is_error_code_enum<lab::pxe::dhcp::engine::StoreError> : std::true_type {};
