#include "agent/daemon/health.hpp"

#include "agent/configrun/summary.hpp"
#include "agent/sync/error.hpp"
#include "agent/sync/syncer.hpp"

#include <boost/json/array.hpp>

#include <malloc.h>
#include <sys/stat.h>

namespace lab::agent::daemon {

Health::Health(boost::asio::io_context& io, cache::Cache& cache,
               std::shared_ptr<localapi::State> state, Options options,
               std::function<std::int64_t()> now, const shared::log::Logger& log)
    : cache_(cache),
      state_(std::move(state)),
      options_(std::move(options)),
      config_run_timer_(io),
      now_(std::move(now)),
      log_(log),
      scheduler_(now_, [this](const shared::protocol::CheckResult& r, bool changed) {
        on_result(r, changed);
      }) {
  if (auto kept = cache_.check_results(); kept) {
    kept_unchecked_ = !kept->empty();
    scheduler_.restore(*kept);
    state_->set_checks(std::move(*kept));
  }
}

Health::~Health() {
  stop();
  if (reporter_.joinable())
    reporter_.join();
}

void Health::start(const std::vector<shared::protocol::Check>& checks) {
  read_config_run(false);
  apply_checks(checks, false);
  if (!options_.config_run_file.empty())
    watch_config_run();
}

void Health::set_checks(const std::vector<shared::protocol::Check>& checks) {
  apply_checks(checks, true);
}

void Health::apply_checks(const std::vector<shared::protocol::Check>& checks, bool report) {
  auto before = scheduler_.results();
  scheduler_.set_checks(checks);
  auto results = scheduler_.results();
  // The same set (a bundle that changed only labels, a node that has none): nothing to write,
  // nothing to tell the coordinator.
  if (results == before && !kept_unchecked_)
    return;
  kept_unchecked_ = false;
  // Checks that are gone leave the cache and the coordinator's view too.
  if (auto kept = cache_.store_check_results(results); !kept)
    log_.warn("cannot keep the health checks' states", {{"error", kept.error().message()}});
  state_->set_checks(std::move(results));
  if (!report)
    return;
  const std::lock_guard lock(mutex_);
  mark_dirty();
}

void Health::mark_dirty() {
  if (stopping_)
    return;
  if (!dirty_)
    dirty_since_ = std::chrono::steady_clock::now();
  dirty_ = true;
  if (!reporter_.joinable()) {
    reporter_done_ = false;
    reporter_ = std::thread([this] { report_loop(); });
  }
  wake_.notify_all();
}

void Health::on_result(const shared::protocol::CheckResult& result, bool changed) {
  auto results = scheduler_.results();
  if (changed) {
    if (result.status == "failing")
      log_.warn("check failing", {{"check", result.name}, {"reason", result.reason}});
    else
      log_.info("check " + result.status, {{"check", result.name}, {"reason", result.reason}});
    // Written on a change only: a run every few seconds must not mean a disk write each.
    if (auto kept = cache_.store_check_results(results); !kept)
      log_.warn("cannot keep the health checks' states", {{"error", kept.error().message()}});
  }
  state_->set_checks(std::move(results));
  if (!changed)
    return;
  const std::lock_guard lock(mutex_);
  mark_dirty();
}

void Health::watch_config_run() {
  config_run_timer_.expires_after(options_.config_run_every);
  config_run_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec)
      return;
    read_config_run(true);
    watch_config_run();
  });
}

void Health::read_config_run(bool report) {
  if (options_.config_run_file.empty())
    return;
  // The agent rewrites the file after each run (every 30 minutes by default): a stat each
  // round, a parse only when it changed.
  FileStamp stamp;
  struct stat st {};
  if (::stat(options_.config_run_file.c_str(), &st) == 0) {
    stamp = {static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
             static_cast<std::int64_t>(st.st_size), static_cast<std::uint64_t>(st.st_ino)};
  }
  if (stamp == config_run_stamp_)
    return;
  config_run_stamp_ = stamp;
  auto summary = configrun::read_summary(options_.config_run_file);
  boost::json::object run;
  if (!summary) {
    log_.debug("configuration run summary unreadable", {{"error", summary.error().message()}});
  } else if (*summary) {
    run = configrun::to_json(**summary);
  }
  state_->set_config_run(run);
  const std::lock_guard lock(mutex_);
  if (run != config_run_) {
    config_run_ = std::move(run);
    if (report)
      mark_dirty();
  }
}

boost::json::object Health::report_extras() const {
  boost::json::array checks;
  for (const auto& r : scheduler_.results())
    checks.push_back(shared::protocol::check_result_to_json(r));
  const std::lock_guard lock(mutex_);
  return {{"checks", std::move(checks)}, {"config_run", config_run_}};
}

void Health::report_loop() {
  using Clock = std::chrono::steady_clock;
  // A few reports at once, then one per report_interval: the coordinator's own allowance
  // (coordinator.report_burst, 6) less room for the syncer's reports.
  constexpr double kBurst = 3;
  double tokens = kBurst;
  auto counted = Clock::now();
  auto not_before = Clock::now();  // after a refusal or a 429
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const auto now = Clock::now();
    tokens = std::min(kBurst, tokens + std::chrono::duration<double>(now - counted).count() /
                                           static_cast<double>(options_.report_interval.count()));
    counted = now;
    const auto token_at =
        now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                  (1 - tokens) * static_cast<double>(options_.report_interval.count())));
    // A change waits a moment for the changes that come with it (a new bundle's checks and
    // their first results), so one report carries them all.
    const auto ready_at = std::max(
        {not_before, tokens >= 1 ? now : token_at, dirty_since_ + std::chrono::seconds(1)});
    if (!dirty_) {
      wake_.wait(lock);
      continue;
    }
    if (now < ready_at) {
      wake_.wait_until(lock, ready_at);
      continue;
    }
    dirty_ = false;
    tokens -= 1;
    lock.unlock();
    boost::json::object facts = options_.base_facts;
    for (auto& kv : report_extras())
      facts[kv.key()] = std::move(kv.value());
    Result<void> sent = Error(sync::SyncError::unreachable, "no identity");
    std::optional<std::chrono::seconds> retry;
    if (auto id = cache_.identity()) {
      auto transport = sync::make_http_transport(*id, std::chrono::seconds(5));
      sent = transport->report("ready", facts);
      retry = transport->retry_after();
    }
    // A report is a TLS connection of its own (context, handshake, buffers) and the states
    // were just written to the cache: give the freed heap and SQLite pages back, as the syncer
    // does after each answered poll, so that checks running for days do not ratchet labd up.
    facts = {};
    cache_.release_memory();
    malloc_trim(0);
    lock.lock();
    if (!sent) {
      mark_dirty();  // sent again after the pause (or the coordinator's Retry-After)
      not_before = Clock::now() +
                   (sent.error() == sync::SyncError::rate_limited && retry
                        ? std::clamp(*retry, std::chrono::seconds(1), std::chrono::seconds(3600))
                        : options_.report_interval);
      log_.debug("health report not taken", {{"error", sent.error().message()}});
    }
  }
  reporter_done_ = true;
  wake_.notify_all();
}

void Health::stop() {
  config_run_timer_.cancel();
  scheduler_.stop();
  const std::lock_guard lock(mutex_);
  stopping_ = true;
  wake_.notify_all();
}

bool Health::reporting() const {
  const std::lock_guard lock(mutex_);
  return reporter_.joinable();
}

bool Health::join_for(std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  {
    std::unique_lock lock(mutex_);
    if (!wake_.wait_until(lock, until, [&] { return reporter_done_; }))
      return false;
  }
  if (reporter_.joinable())
    reporter_.join();
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      until - std::chrono::steady_clock::now());
  return scheduler_.join_for(std::max(left, std::chrono::milliseconds(0)));
}

}  // namespace lab::agent::daemon
