#include "bootstrap/serve/serve.hpp"

#include "bootstrap/serve/component.hpp"
#include "bootstrap/serve/services.hpp"
#include "shared/cli/cli.hpp"
#include "shared/log/log.hpp"
#include "shared/metrics/metrics.hpp"
#include "shared/version/version.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <systemd/sd-daemon.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <functional>
#include <thread>

namespace lab::bootstrap::serve {
namespace {

namespace asio = boost::asio;
using shared::log::Logger;

// Holds an exclusive lock on <data_dir>/lab.lock for the life of the process, so two
// appliances never share one store.
class DataDirLock {
 public:
  static Result<DataDirLock> acquire(const std::filesystem::path& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
      return Error(ec, "cannot create data directory " + dir.string());
    ::chmod(dir.c_str(), 0700);
    const auto path = dir / "lab.lock";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
      return errno_error("cannot open " + path.string());
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      return Error(
          boost::system::errc::make_error_code(boost::system::errc::device_or_resource_busy),
          "data directory " + dir.string() + " is in use by another lab serve");
    }
    return DataDirLock(fd);
  }
  DataDirLock(DataDirLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  DataDirLock& operator=(DataDirLock&&) = delete;
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;
  ~DataDirLock() {
    if (fd_ >= 0)
      ::close(fd_);
  }

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace

shared::config::Schema schema() {
  shared::config::Schema s;
  s.string("data_dir", "/var/lib/lab", "state directory (store, CA, leases); created 0700")
      .choice("log.level", "info", {"trace", "debug", "info", "warn", "error"}, "log level")
      .integer("serve.io_threads", 1, "threads running the io_context", 1, 64)
      .integer("serve.blocking_threads", 2, "threads for blocking work (SQLite, archives)", 1, 64)
      .duration("serve.shutdown_grace", std::chrono::seconds(10),
                "how long in-flight work may take after SIGTERM");
  for (const auto& c : all_components()) {
    c.declare_config(s);
  }
  return s;
}

int run(const shared::config::Config& config) {
  shared::log::Level level = shared::log::Level::info;
  shared::log::parse_level(config.string("log.level"), level);
  shared::log::configure(
      {.level = level, .format = shared::log::Format::automatic, .output = nullptr});
  const Logger log("serve");

  const std::filesystem::path data_dir = config.string("data_dir");
  auto lock = DataDirLock::acquire(data_dir);
  if (!lock) {
    shared::cli::print_error("lab", lock.error(), "stop the other instance or pass --data-dir");
    return shared::cli::kExitFailure;
  }

  asio::io_context io(static_cast<int>(config.integer("serve.io_threads")));
  asio::thread_pool blocking(static_cast<std::size_t>(config.integer("serve.blocking_threads")));
  // Declared before the components: their figures are registered into it, and it goes last.
  shared::metrics::Registry metrics;
  metrics.gauge("lab_build_info", "Always 1; the version of lab serving.", {"version"})
      .with({std::string(shared::kVersion)})
      .set(1);
  metrics
      .gauge("lab_process_start_time_seconds",
             "When lab serve started, in seconds since the Unix epoch.")
      .get()
      .set(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
               .count());
  Runtime runtime{io, blocking, data_dir, config, metrics};
  Services services;

  std::vector<std::unique_ptr<Component>> running;
  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::steady_timer grace(io);
  // WATCHDOG=1 at half the unit's WatchdogSec=, from the io_context: a wedged event loop stops
  // the pings and systemd restarts the service.
  asio::steady_timer watchdog(io);
  std::uint64_t watchdog_usec = 0;
  std::function<void()> arm_watchdog = [&] {
    watchdog.expires_after(std::chrono::microseconds(watchdog_usec / 2));
    watchdog.async_wait([&](const boost::system::error_code& ec) {
      if (ec)
        return;
      sd_notify(0, "WATCHDOG=1");
      arm_watchdog();
    });
  };
  // Stops components in reverse start order; when the last one has drained, nothing is left
  // on the io_context and run() returns.
  auto stop_all = [&] {
    auto remaining = std::make_shared<std::size_t>(running.size());
    auto one_stopped = [&, remaining] {
      if (--*remaining == 0) {
        grace.cancel();
        signals.cancel();
      }
    };
    watchdog.cancel();
    if (running.empty()) {
      grace.cancel();
      signals.cancel();
    }
    for (auto it = running.rbegin(); it != running.rend(); ++it) {
      log.info("stopping", {{"component", (*it)->name()}});
      (*it)->stop(one_stopped);
    }
  };
  for (const auto& spec : all_components()) {
    auto created = spec.create(runtime, services);
    if (!created) {
      Error e = created.error();
      shared::cli::print_error("lab", e.context(std::string(spec.name)));
      stop_all();
      io.run();
      return shared::cli::kExitFailure;
    }
    if (!*created)
      continue;  // disabled
    if (auto started = (*created)->start(); !started) {
      Error e = started.error();
      shared::cli::print_error("lab", e.context(std::string(spec.name)));
      stop_all();
      io.run();
      return shared::cli::kExitFailure;
    }
    log.info("started", {{"component", spec.name}});
    running.push_back(std::move(*created));
  }

  // SIGTERM/SIGINT: stop accepting, let work in flight finish, and leave once the io_context
  // runs out of work or the grace period ends.
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec)
      return;
    log.info("shutting down", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
    sd_notify(0, "STOPPING=1");
    grace.expires_after(config.duration("serve.shutdown_grace"));
    grace.async_wait([&](const boost::system::error_code& e) {
      if (!e) {
        log.warn("grace period over, stopping with work in flight");
        io.stop();
      }
    });
    // A second signal stops at once.
    signals.async_wait([&](const boost::system::error_code& e2, int) {
      if (!e2)
        io.stop();
    });
    stop_all();
  });

  log.info("ready", {{"data_dir", data_dir.string()}, {"components", running.size()}});
  sd_notify(0, "READY=1");
  if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0)
    arm_watchdog();

  std::vector<std::thread> threads;
  for (std::int64_t i = 1; i < config.integer("serve.io_threads"); ++i) {
    threads.emplace_back([&io] { io.run(); });
  }
  io.run();
  for (auto& t : threads)
    t.join();
  blocking.join();
  log.info("stopped");
  return shared::cli::kExitOk;
}

}  // namespace lab::bootstrap::serve
