#include "agent/daemon/run.hpp"

#include "agent/daemon/health.hpp"
#include "agent/daemon/node.hpp"
#include "agent/daemon/notify.hpp"
#include "agent/daemon/peers.hpp"
#include "agent/files/atomic_file.hpp"
#include "agent/localapi/server.hpp"
#include "agent/render/render.hpp"
#include "agent/sync/syncer.hpp"
#include "shared/crypto/x509.hpp"
#include "shared/log/log.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <malloc.h>

#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>

namespace lab::agent::daemon {
namespace {

namespace log = shared::log;
using namespace std::chrono_literals;

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void render_view(const log::Logger& logger, const render::Paths& paths, const cache::View& view,
                 const shared::crypto::X25519PrivateKey& key) {
  if (auto r = render::render(paths, view, key); !r) {
    logger.error("rendering files failed",
                 {{"revision", view.revision}, {"error", r.error().message()}});
  }
}

// Sends WATCHDOG=1 at half the interval systemd asked for, from the io_context: a wedged
// event loop stops the pings and systemd restarts the agent.
class Watchdog {
 public:
  explicit Watchdog(boost::asio::io_context& io) : timer_(io) {
    if (const auto interval = watchdog_interval()) {
      interval_ = *interval / 2;
      arm();
    }
  }
  void cancel() { timer_.cancel(); }

 private:
  void arm() {
    timer_.expires_after(interval_);
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec)
        return;
      notify("WATCHDOG=1");
      arm();
    });
  }
  boost::asio::steady_timer timer_;
  std::chrono::microseconds interval_{0};
};

// The metrics, rewritten to a node_exporter textfile every interval (write, fsync, rename: the
// collector never reads half a file). A failed write is logged once until one succeeds.
class MetricsTextfile {
 public:
  MetricsTextfile(boost::asio::io_context& io, const Settings& s,
                  std::shared_ptr<const localapi::State> state, const shared::log::Logger& log)
      : timer_(io),
        path_(s.metrics_textfile),
        interval_(s.metrics_textfile_interval),
        state_(std::move(state)),
        log_(log) {
    if (!path_.empty())
      write();
  }
  void cancel() { timer_.cancel(); }

 private:
  void write() {
    auto written = files::write_atomic(path_, localapi::metrics_text(*state_, unix_now()), 0644);
    if (!written && !failing_)
      log_.warn("cannot write the metrics textfile",
                {{"file", path_.string()}, {"error", written.error().message()}});
    else if (written && failing_)
      log_.info("metrics textfile written again", {{"file", path_.string()}});
    failing_ = !written;
    timer_.expires_after(interval_);
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec)
        write();
    });
  }
  boost::asio::steady_timer timer_;
  std::filesystem::path path_;
  std::chrono::seconds interval_;
  std::shared_ptr<const localapi::State> state_;
  const shared::log::Logger& log_;
  bool failing_ = false;
};

// When the node's certificate expires, for status and metrics; nullopt when it does not parse.
std::optional<std::int64_t> certificate_not_after(const std::string& pem) {
  auto cert = shared::crypto::Certificate::from_pem(pem);
  if (!cert)
    return std::nullopt;
  return std::chrono::duration_cast<std::chrono::seconds>(cert->not_after().time_since_epoch())
      .count();
}

}  // namespace

int run(const Settings& s) {
  // The agent's two threads share one heap (a second arena would keep its own high-water
  // mark), and buffers of 64 KiB and more (HTTP bodies, envelopes, the labels JSON) come
  // straight from mmap, so they go back to the kernel when freed instead of fragmenting it.
  // Set before any other thread exists.
  mallopt(M_ARENA_MAX, 1);               // NOLINT(concurrency-mt-unsafe)
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);  // NOLINT(concurrency-mt-unsafe)
  cache::Cache::configure_process_memory();
  log::Level level = log::Level::info;
  log::parse_level(s.log_level, level);
  log::configure({.level = level, .format = log::Format::automatic, .output = nullptr});
  const log::Logger logger("labd");

  auto opened = open_node(s);
  if (!opened && opened.error() == DaemonError::not_joined) {
    logger.error("this node has not joined; not starting",
                 {{"data_dir", s.data_dir.string()}, {"hint", hint(opened.error())}});
    return kExitNotJoined;
  }
  if (!opened) {
    logger.error("cannot open the node's state",
                 {{"error", opened.error().message()}, {"hint", hint(opened.error())}});
    return 1;
  }
  OpenNode node = std::move(*opened);
  auto sealing = shared::crypto::X25519PrivateKey::from_raw(node.identity.sealing_key);
  std::shared_ptr<localapi::State> state;
  std::vector<shared::protocol::Check> cached_checks;
  {
    // Scoped: the view with its label map is needed only to render and to build what the
    // local API serves; an idle agent keeps the latter alone.
    auto first_view = node.cache->view();
    if (!sealing || !first_view) {
      logger.error(
          "the cache does not load",
          {{"error", first_view ? sealing.error().message() : first_view.error().message()}});
      return 1;
    }
    state = std::make_shared<localapi::State>(*first_view, *sealing, node.key->status());
    if (const auto not_after = certificate_not_after(node.identity.certificate_pem))
      state->set_certificate_not_after(*not_after);
    if (first_view->revision > 0)
      render_view(logger, s.render, *first_view, *sealing);
    cached_checks = first_view->checks;
    logger.info("serving from cache", {{"node", node.identity.node_id},
                                       {"revision", first_view->revision},
                                       {"confirmed_at", first_view->confirmed_at.value_or(0)},
                                       {"key_protection", node.key->status()}});
  }
  node.cache->release_memory();
  malloc_trim(0);

  boost::asio::io_context io;
  // Registered before the socket exists: a stop request that comes as soon as the socket
  // answers is queued here instead of killing the process with the default action.
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  auto api = std::make_shared<const localapi::Api>(state, s.secret_access, unix_now);
  localapi::Server server(io, api);
  if (auto l = server.listen(s.socket); !l) {
    logger.error("cannot listen on the local socket",
                 {{"socket", s.socket.string()}, {"error", l.error().message()}});
    return 1;
  }

  sync::SyncOptions options;
  options.wait = s.poll_wait;
  options.backoff = {std::chrono::duration_cast<std::chrono::milliseconds>(s.backoff_initial),
                     std::chrono::duration_cast<std::chrono::milliseconds>(s.backoff_cap)};
  options.report_facts = node_facts("/", node.key->protection_fact());

  // Peers: the listener when the node has an address peers can use, the gossip thread always
  // (a node without a listener still pulls from its partners and asks its keepers).
  std::unique_ptr<Peers> peers;
  if (s.peer_listen != "off") {
    auto made = Peers::create(s, *node.cache, node.identity, state);
    if (!made) {
      logger.error("peer sync cannot start", {{"error", made.error().message()}});
      return 1;
    }
    peers = std::move(*made);
    if (const auto address = advertised_peer_address(s, node.identity.coordinator_url)) {
      if (auto l = peers->listen(io, *address); !l) {
        logger.error("cannot listen for peers",
                     {{"listen", s.peer_listen}, {"error", l.error().message()}});
        return 1;
      }
      options.report_facts["peer_address"] = *address;
    } else {
      logger.info("no peer listener: no routable address for this node",
                  {{"listen", s.peer_listen},
                   {"hint", "set peer.advertise to the ADDRESS:PORT peers should use"}});
    }
  }
  Health health(io, *node.cache, state,
                {.base_facts = options.report_facts,
                 .config_run_file = s.config_run_file,
                 .config_run_every = std::chrono::seconds(60),
                 .report_interval = std::chrono::seconds(10)},
                unix_now, logger);
  options.report_extras = [&health] { return health.report_extras(); };
  sync::SyncHooks hooks;
  hooks.applied = [&](const cache::View& v) {
    render_view(logger, s.render, v, *sealing);
    state->set_view(v);
    health.set_checks(v.checks);
    logger.info(
        "applied bundle",
        {{"revision", v.revision}, {"labels", v.labels.size()}, {"secrets", v.secrets.size()}});
    notify("STATUS=revision " + std::to_string(v.revision));
  };
  hooks.contact = [&](bool reachable, std::int64_t now) {
    if (reachable != state->reachable())
      logger.info(reachable ? "coordinator reachable" : "coordinator unreachable");
    state->set_reachable(reachable, now);
  };
  hooks.confirmed = [&](std::int64_t now) {
    if (state->sync_status().sync != "ok")
      logger.info("sync ok: the coordinator confirmed the cache current");
    state->set_confirmed(now);
  };
  hooks.failed = [&](const Error& e, std::chrono::milliseconds delay) {
    logger.warn("sync failed", {{"error", e.message()}, {"retry_in_ms", delay.count()}});
    state->set_failed(sync::health_name(sync::health_of(e)), e.message());
  };
  hooks.renewed = [&](std::int64_t not_after) {
    logger.info("certificate renewed", {{"not_after", not_after}});
    state->set_certificate_not_after(not_after);
    if (peers)
      boost::asio::post(io, [&] { peers->reload_certificate(); });
  };
  hooks.relayed = [&](const cache::Origin& from, std::int64_t revision) {
    logger.info("applied bundle relayed by a keeper (the coordinator is out of reach)",
                {{"revision", revision}, {"peer", from.peer_node}, {"address", from.peer_address}});
  };
  hooks.kept = [&](std::size_t nodes, std::int64_t revision) {
    logger.debug("keeping envelopes for peers", {{"nodes", nodes}, {"revision", revision}});
  };
  hooks.rejoin_needed = [&](const Error& e) {
    logger.error(
        "the node certificate expired longer ago than the coordinator's renewal grace: renewal "
        "stopped, the cache is still served, and this node must join again to sync",
        {{"error", e.message()}, {"hint", "labd rejoin <join-string> (from 'lab token create')"}});
  };
  hooks.report_failed = [&](const Error& e, std::chrono::seconds retry_in) {
    // Only the coordinator's view of this node waits; bundles keep coming.
    if (e == sync::SyncError::rate_limited)
      logger.info("report rate-limited; sent again later",
                  {{"error", e.message()}, {"retry_in_seconds", retry_in.count()}});
    else
      logger.warn("report failed; sent again later", {{"error", e.message()}});
  };
  sync::Syncer syncer(
      *node.cache,
      [wait = s.poll_wait](const cache::Identity& id) {
        return sync::make_http_transport(id, wait);
      },
      options, hooks, unix_now);
  if (peers)
    syncer.set_peer_sync(&peers->peer_sync());
  syncer.on_settled([&] {
    // Parsing, verifying, storing and rendering a large bundle leaves freed heap and SQLite
    // pages behind; give them back so an idle agent holds only what the local API serves.
    node.cache->release_memory();
    malloc_trim(0);
  });

  health.start(cached_checks);
  std::mutex done_mutex;
  std::condition_variable done_cv;
  bool done = false;
  std::thread sync_thread([&] {
    syncer.run();
    const std::lock_guard l(done_mutex);
    done = true;
    done_cv.notify_all();
  });
  if (peers)
    peers->start(syncer);

  Watchdog watchdog(io);
  MetricsTextfile textfile(io, s, state, logger);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec)
      return;
    logger.info("stopping", {{"signal", sig}});
    notify("STOPPING=1");
    syncer.stop();
    health.stop();
    watchdog.cancel();
    textfile.cancel();
    auto stop_local = [&] { server.stop([&] { io.stop(); }); };
    if (peers)
      peers->stop(stop_local);
    else
      stop_local();
  });
  notify("READY=1");
  logger.info("ready", {{"socket", s.socket.string()}});
  io.run();
  std::error_code ec;
  std::filesystem::remove(s.socket, ec);  // a later reader falls back to the cache at once

  // A long-poll in flight can hold the sync thread for up to `sync.wait`; do not wait for it.
  // Once no bundle is being applied (the apply mutex) the cache is consistent, and committed
  // transactions are durable (WAL, synchronous=FULL), so leaving at once is safe.
  // A gossip round or a keeper request in flight holds the peer thread like a long-poll holds
  // the sync thread: the same rule applies to both.
  // A health check in flight ends within its own timeout; the same rule.
  const bool peers_done = (!peers || peers->join_for(500ms)) && health.join_for(500ms);
  std::unique_lock l(done_mutex);
  if (peers_done && done_cv.wait_for(l, 500ms, [&] { return done; })) {
    l.unlock();
    sync_thread.join();
    return 0;
  }
  const std::lock_guard apply(syncer.apply_mutex());
  (void)std::fflush(nullptr);  // nothing useful to do if a log line is lost at exit
  std::_Exit(0);
}

}  // namespace lab::agent::daemon
