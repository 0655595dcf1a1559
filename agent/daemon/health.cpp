#include "agent/daemon/health.hpp"

#include "agent/configrun/summary.hpp"
#include "agent/sync/error.hpp"
#include "agent/sync/syncer.hpp"

#include <boost/json/array.hpp>

namespace lab::agent::daemon {

Health::Health(cache::Cache& cache, std::shared_ptr<localapi::State> state, Options options,
               std::function<std::int64_t()> now, const shared::log::Logger& log)
    : cache_(cache),
      state_(std::move(state)),
      options_(std::move(options)),
      now_(std::move(now)),
      log_(log),
      scheduler_(now_, [this](const shared::protocol::CheckResult& r, bool changed) {
        on_result(r, changed);
      }) {
  if (auto kept = cache_.check_results(); kept) {
    scheduler_.restore(*kept);
    state_->set_checks(*kept);
  }
}

Health::~Health() {
  stop();
  if (reporter_.joinable())
    reporter_.join();
}

void Health::start(const std::vector<shared::protocol::Check>& checks) {
  read_config_run();
  {
    const std::lock_guard lock(mutex_);
    reporter_done_ = false;
  }
  reporter_ = std::thread([this] { report_loop(); });
  set_checks(checks);
}

void Health::set_checks(const std::vector<shared::protocol::Check>& checks) {
  scheduler_.set_checks(checks);
  auto results = scheduler_.results();
  state_->set_checks(results);
  // Checks that are gone leave the cache and the coordinator's view too.
  if (auto kept = cache_.store_check_results(results); !kept)
    log_.warn("cannot keep the health checks' states", {{"error", kept.error().message()}});
  const std::lock_guard lock(mutex_);
  mark_dirty();
}

void Health::mark_dirty() {
  if (!dirty_)
    dirty_since_ = std::chrono::steady_clock::now();
  dirty_ = true;
  wake_.notify_all();
}

void Health::on_result(const shared::protocol::CheckResult& result, bool changed) {
  const auto results = scheduler_.results();
  state_->set_checks(results);
  if (!changed)
    return;
  if (result.status == "failing")
    log_.warn("check failing", {{"check", result.name}, {"reason", result.reason}});
  else
    log_.info("check " + result.status, {{"check", result.name}, {"reason", result.reason}});
  // Written on a change only: a run every few seconds must not mean a disk write each.
  if (auto kept = cache_.store_check_results(results); !kept)
    log_.warn("cannot keep the health checks' states", {{"error", kept.error().message()}});
  const std::lock_guard lock(mutex_);
  mark_dirty();
}

void Health::read_config_run() {
  if (options_.config_run_file.empty())
    return;
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
  auto next_config_run = Clock::now() + options_.config_run_every;
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const auto now = Clock::now();
    tokens = std::min(kBurst, tokens + std::chrono::duration<double>(now - counted).count() /
                                           static_cast<double>(options_.report_interval.count()));
    counted = now;
    if (now >= next_config_run) {
      lock.unlock();
      read_config_run();
      lock.lock();
      next_config_run = now + options_.config_run_every;
      continue;
    }
    const auto token_at =
        now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                  (1 - tokens) * static_cast<double>(options_.report_interval.count())));
    // A change waits a moment for the changes that come with it (a new bundle's checks and
    // their first results), so one report carries them all.
    const auto ready_at = std::max(
        {not_before, tokens >= 1 ? now : token_at, dirty_since_ + std::chrono::seconds(1)});
    if (!dirty_ || now < ready_at) {
      wake_.wait_until(lock, dirty_ ? std::min(ready_at, next_config_run) : next_config_run);
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
  scheduler_.stop();
  const std::lock_guard lock(mutex_);
  stopping_ = true;
  wake_.notify_all();
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
