#pragma once

#include "pxe/events/event.hpp"
#include "shared/errors/error.hpp"
#include "shared/sqlite/database.hpp"

#include <cstddef>
#include <filesystem>
#include <vector>

namespace lab::pxe::recorder {

struct StoreLimits {
  std::size_t events_per_machine = 256;  // a machine's oldest events are dropped first
  std::size_t max_events = 200000;       // in all; the oldest events are dropped first
};

/// The recorder's machine timelines on disk (SQLite, WAL), so `lab machine timeline` survives
/// restarts of lab serve and one machine's boots and deploys stay in one timeline. Bounded per
/// machine and in total, oldest dropped first. Events nothing ties to a machine are not kept.
/// Use from one thread at a time.
class TimelineStore {
 public:
  static Result<TimelineStore> open(const std::filesystem::path& path, StoreLimits limits);

  /// Every kept event, oldest first, for Recorder::restore(). Rows that do not decode (an
  /// unknown kind from a newer lab) are skipped.
  [[nodiscard]] Result<std::vector<events::Event>> load();
  /// Appends events that carry a MAC, in one transaction, and trims to the limits.
  Result<void> append(const std::vector<events::Event>& events);

 private:
  TimelineStore(shared::sqlite::Database db, StoreLimits limits)
      : db_(std::move(db)), limits_(limits) {}
  shared::sqlite::Database db_;
  StoreLimits limits_;
};

}  // namespace lab::pxe::recorder
