// `lab serve` component "recorder": the boot flight recorder every PXE server reports to. It is
// created first so that the servers created after it find it in Services.
#include "bootstrap/serve/component.hpp"
#include "bootstrap/serve/services.hpp"
#include "pxe/recorder/recorder.hpp"
#include "pxe/recorder/store.hpp"
#include "shared/log/log.hpp"
#include "shared/metrics/metrics.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fmt/format.h>

#include <mutex>
#include <optional>

namespace lab::bootstrap::serve {
namespace {

// Holds the recorder for as long as `lab serve` runs, and with recorder.persist its timelines
// on disk: loaded at start, and every event kept is written within about a second, in one
// transaction per second on the blocking pool (never on the servers' path). Losing the last
// second to a crash loses no acknowledged state: the timelines are a diagnostic record.
class RecorderComponent final : public Component {
 public:
  RecorderComponent(Runtime& runtime, pxe::recorder::Limits limits,
                    std::optional<pxe::recorder::TimelineStore> store)
      : runtime_(runtime),
        recorder_(limits),
        limits_(limits),
        store_(std::move(store)),
        flush_timer_(runtime.io) {}

  [[nodiscard]] std::string_view name() const override { return "recorder"; }

  Result<void> start() override {
    std::size_t restored = 0;
    if (store_) {
      LAB_TRY_ASSIGN(auto kept, store_->load());
      restored = kept.size();
      recorder_.restore(std::move(kept));
      recorder_.on_kept([this](const pxe::events::Event& e) {
        const std::lock_guard lock(pending_mu_);
        if (pending_.size() >= kMaxPending) {
          ++dropped_;  // the disk is this far behind: keep memory bounded, say so in metrics
          return;
        }
        pending_.push_back(e);
      });
      schedule_flush();
    }
    log_.info("recording boot timelines", {{"machines", limits_.max_machines},
                                           {"events_per_machine", limits_.events_per_machine},
                                           {"persist", store_.has_value()},
                                           {"restored_events", restored}});
    return {};
  }

  void stop(std::function<void()> stopped) override {
    if (!store_) {
      stopped();
      return;
    }
    stopping_ = true;
    stopped_ = std::move(stopped);
    flush_timer_.cancel();
    flush();
  }

  pxe::recorder::Recorder& recorder() noexcept { return recorder_; }
  [[nodiscard]] pxe::recorder::Stats recorder_stats() const { return recorder_.stats(); }
  [[nodiscard]] std::uint64_t dropped() const {
    const std::lock_guard lock(pending_mu_);
    return dropped_;
  }

 private:
  static constexpr std::size_t kMaxPending = 100000;

  void schedule_flush() {
    flush_timer_.expires_after(std::chrono::seconds(1));
    flush_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec && !stopping_)
        flush();
    });
  }

  // One write at a time, on the blocking pool; when stopping, writes until nothing is left,
  // then reports stopped. Runs on the io thread.
  void flush() {
    if (flushing_)
      return;  // the write in flight flushes again when it ends
    std::vector<pxe::events::Event> batch;
    {
      const std::lock_guard lock(pending_mu_);
      batch.swap(pending_);
    }
    if (batch.empty()) {
      if (stopping_) {
        if (auto done = std::exchange(stopped_, nullptr))
          done();
      } else {
        schedule_flush();
      }
      return;
    }
    flushing_ = true;
    boost::asio::post(runtime_.blocking, [this, batch = std::move(batch)] {
      auto written = store_->append(batch);
      boost::asio::post(runtime_.io, [this, written = std::move(written), n = batch.size()] {
        flushing_ = false;
        if (!written)
          log_.warn("cannot write boot timelines; they stay in memory",
                    {{"events", n}, {"error", written.error().message()}});
        if (stopping_)
          flush();
        else
          schedule_flush();
      });
    });
  }

  Runtime& runtime_;
  pxe::recorder::Recorder recorder_;
  pxe::recorder::Limits limits_;
  std::optional<pxe::recorder::TimelineStore> store_;  // used on the blocking pool only
  boost::asio::steady_timer flush_timer_;
  mutable std::mutex pending_mu_;
  std::vector<pxe::events::Event> pending_;  // under pending_mu_
  std::uint64_t dropped_ = 0;                // under pending_mu_
  bool flushing_ = false;                    // io thread
  bool stopping_ = false;                    // io thread
  std::function<void()> stopped_;
  shared::log::Logger log_{"recorder"};
};

// Read at each scrape from the recorder's own counters (it is thread-safe), which lives as
// long as the registry is rendered: until lab serve's io_context has stopped.
void register_metrics(shared::metrics::Registry& registry, const RecorderComponent& c) {
  registry.text([&c] {
    const auto s = c.recorder_stats();
    return fmt::format(
        "# HELP lab_recorder_events_total Boot events recorded.\n"
        "# TYPE lab_recorder_events_total counter\n"
        "lab_recorder_events_total {}\n"
        "# HELP lab_recorder_unattributed_total Events that arrived without a MAC and matched "
        "no address DHCP handed out.\n"
        "# TYPE lab_recorder_unattributed_total counter\n"
        "lab_recorder_unattributed_total {}\n"
        "# HELP lab_recorder_machines_evicted_total Machines forgotten to stay within "
        "recorder.max_machines.\n"
        "# TYPE lab_recorder_machines_evicted_total counter\n"
        "lab_recorder_machines_evicted_total {}\n"
        "# HELP lab_recorder_machines Machines with a timeline.\n"
        "# TYPE lab_recorder_machines gauge\n"
        "lab_recorder_machines {}\n"
        "# HELP lab_recorder_unsaved_total Events not written to disk because the writer was "
        "too far behind (recorder.persist).\n"
        "# TYPE lab_recorder_unsaved_total counter\n"
        "lab_recorder_unsaved_total {}\n",
        s.recorded, s.unattributed, s.machines_evicted, s.machines, c.dropped());
  });
}

}  // namespace

ComponentSpec recorder_component() {
  return {
      .name = "recorder",
      .declare_config =
          [](shared::config::Schema& s) {
            s.boolean("recorder.enabled", true,
                      "keep per-machine boot timelines (lab machine timeline MAC)")
                .integer("recorder.max_machines", 4096,
                         "machines remembered; the least recently active is forgotten first", 1,
                         1000000)
                .integer("recorder.events_per_machine", 256,
                         "events kept per machine; the oldest are dropped first", 1, 100000)
                .integer("recorder.unattributed", 256,
                         "events kept that no DHCP exchange ties to a machine", 1, 100000)
                .boolean("recorder.persist", true,
                         "keep the timelines in <data_dir>/recorder.db across restarts")
                .integer("recorder.max_events", 200000,
                         "events kept on disk in all; the oldest are dropped first", 1, 100000000);
          },
      .create = [](Runtime& runtime, Services& services) -> Result<std::unique_ptr<Component>> {
        const auto& c = runtime.config;
        if (!c.boolean("recorder.enabled"))
          return std::unique_ptr<Component>();
        pxe::recorder::Limits limits;
        limits.max_machines = static_cast<std::size_t>(c.integer("recorder.max_machines"));
        limits.events_per_machine =
            static_cast<std::size_t>(c.integer("recorder.events_per_machine"));
        limits.unattributed = static_cast<std::size_t>(c.integer("recorder.unattributed"));
        std::optional<pxe::recorder::TimelineStore> store;
        if (c.boolean("recorder.persist")) {
          LAB_TRY_ASSIGN(
              store,
              pxe::recorder::TimelineStore::open(
                  runtime.data_dir / "recorder.db",
                  {.events_per_machine = limits.events_per_machine,
                   .max_events = static_cast<std::size_t>(c.integer("recorder.max_events"))}));
        }
        auto component = std::make_unique<RecorderComponent>(runtime, limits, std::move(store));
        register_metrics(runtime.metrics, *component);
        // Safe to hand out: lab serve destroys components only after the io_context has stopped
        // running and the blocking pool has been joined, so no server records any more.
        services.boot_events = &component->recorder();
        services.recorder = &component->recorder();
        return std::unique_ptr<Component>(std::move(component));
      },
  };
}

}  // namespace lab::bootstrap::serve
