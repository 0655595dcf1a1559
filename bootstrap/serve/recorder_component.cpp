// `lab serve` component "recorder": the boot flight recorder every PXE server reports to. It is
// created first so that the servers created after it find it in Services.
#include "bootstrap/serve/component.hpp"
#include "bootstrap/serve/services.hpp"
#include "pxe/recorder/recorder.hpp"
#include "shared/log/log.hpp"

namespace lab::bootstrap::serve {
namespace {

// Holds the recorder for as long as `lab serve` runs; it has no sockets of its own.
class RecorderComponent final : public Component {
 public:
  explicit RecorderComponent(pxe::recorder::Limits limits) : recorder_(limits), limits_(limits) {}

  [[nodiscard]] std::string_view name() const override { return "recorder"; }

  Result<void> start() override {
    log_.info("recording boot timelines", {{"machines", limits_.max_machines},
                                           {"events_per_machine", limits_.events_per_machine}});
    return {};
  }

  void stop(std::function<void()> stopped) override { stopped(); }

  pxe::recorder::Recorder& recorder() noexcept { return recorder_; }

 private:
  pxe::recorder::Recorder recorder_;
  pxe::recorder::Limits limits_;
  shared::log::Logger log_{"recorder"};
};

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
                         "events kept that no DHCP exchange ties to a machine", 1, 100000);
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
        auto component = std::make_unique<RecorderComponent>(limits);
        // Safe to hand out: lab serve destroys components only after the io_context has stopped
        // running and the blocking pool has been joined, so no server records any more.
        services.boot_events = &component->recorder();
        services.recorder = &component->recorder();
        return std::unique_ptr<Component>(std::move(component));
      },
  };
}

}  // namespace lab::bootstrap::serve
