#pragma once
// The node's health pillar and its configuration run: runs the health checks its bundle names
// (agent/checks), keeps their states in the cache (served offline, kept across restarts) and
// in what the local API serves, reads the last OpenVox/Puppet run summary, and reports changes
// to the coordinator on a thread of its own: the sync thread can be held by a long-poll for
// sync.wait, and a check going red should not wait that long to be seen. That thread starts
// with the first change to report: the syncer's own report carries the states a node starts
// with, so a node without checks or configuration runs never needs it.

#include "agent/cache/cache.hpp"
#include "agent/checks/scheduler.hpp"
#include "agent/localapi/api.hpp"
#include "shared/log/log.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace lab::agent::daemon {

class Health {
 public:
  struct Options {
    boost::json::object base_facts;         // what every report carries (agent/facts)
    std::filesystem::path config_run_file;  // last_run_summary.yaml; empty: not read
    std::chrono::seconds config_run_every{60};
    std::chrono::seconds report_interval{10};  // the coordinator's report rate, one per this
  };
  /// Restores the states the cache kept; nothing runs before start(). The summary file is
  /// looked at from a timer on `io` (the io_context's thread), read only when it changed.
  Health(boost::asio::io_context& io, cache::Cache& cache, std::shared_ptr<localapi::State> state,
         Options options, std::function<std::int64_t()> now, const shared::log::Logger& log);
  Health(const Health&) = delete;
  Health& operator=(const Health&) = delete;
  ~Health();

  /// Starts the checks of the cached view and reads the summary file; reports nothing by itself
  /// (the syncer's first report carries what this finds). The reporter starts at the first
  /// change after that.
  void start(const std::vector<shared::protocol::Check>& checks);
  /// The checks of a newly applied bundle.
  void set_checks(const std::vector<shared::protocol::Check>& checks);
  /// What the syncer's reports add to the facts: {"checks": [...], "config_run": {...}}.
  [[nodiscard]] boost::json::object report_extras() const;
  /// Asks everything to stop; returns at once. On the io_context's thread (or once it stopped).
  void stop();
  /// After stop(): waits up to `timeout` for the threads (a check in flight ends within its own
  /// timeout); false when one still runs.
  bool join_for(std::chrono::milliseconds timeout);
  /// Whether the reporter thread runs: for tests.
  [[nodiscard]] bool reporting() const;

 private:
  void apply_checks(const std::vector<shared::protocol::Check>& checks, bool report);
  void on_result(const shared::protocol::CheckResult& result, bool changed);
  void report_loop();
  void watch_config_run();
  void read_config_run(bool report);
  void mark_dirty();  // mutex_ held; starts the reporter when it does not run yet

  cache::Cache& cache_;
  std::shared_ptr<localapi::State> state_;
  Options options_;
  boost::asio::steady_timer config_run_timer_;
  // What the summary file was when last read (modification time, size, inode): it is parsed
  // again only when one of them moved. Touched on the io_context's thread (and in start()).
  struct FileStamp {
    std::int64_t mtime_ns = -1;
    std::int64_t size = -1;
    std::uint64_t inode = 0;
    friend bool operator==(const FileStamp&, const FileStamp&) = default;
  };
  FileStamp config_run_stamp_;
  std::function<std::int64_t()> now_;
  const shared::log::Logger& log_;
  checks::Scheduler scheduler_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool dirty_ = false;  // a state changed since the last report the coordinator took
  std::chrono::steady_clock::time_point dirty_since_;
  bool stopping_ = false;
  bool reporter_done_ = true;
  // The cache holds states of checks set_checks() has not seen yet: the first call writes them
  // over even when the set is the same as before (empty).
  bool kept_unchecked_ = false;
  boost::json::object config_run_;  // under mutex_
  std::thread reporter_;
};

}  // namespace lab::agent::daemon
