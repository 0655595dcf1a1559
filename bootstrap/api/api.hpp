#pragma once
// The coordinator's HTTP API (API.md) as a shared::http handler: routing, authentication,
// decoding and encoding. Every coordinator call runs on the blocking pool; long-polls park a
// Coordinator::watch and a timer, never a thread. Asio stays in api.cpp.
#include "bootstrap/coordinator/coordinator.hpp"
#include "shared/http/message/message.hpp"
#include "shared/http/server/server.hpp"
#include "shared/ratelimit/limiter.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace boost::asio {
class io_context;
class thread_pool;
}  // namespace boost::asio

namespace lab::pxe::recorder {
class Recorder;
}
namespace lab::pxe::events {
class Sink;
}

namespace lab::bootstrap::api {

struct ApiOptions {
  /// Longest a long-poll is held (API.md: default and maximum 55 s).
  std::chrono::seconds max_wait{55};
  /// Parked long-polls past this are answered 503 at once (each holds a connection).
  std::size_t max_parked = 50000;
  /// The boot flight recorder that answers GET /v1/machines/{mac}/timeline; null when the
  /// appliance runs no PXE servers (the route answers 404). Must outlive the Api.
  const pxe::recorder::Recorder* recorder = nullptr;
  /// Where an agent's report (POST /v1/agent/report) is recorded as agent_boot, for each of the
  /// node's MACs the recorder already has a timeline for (machines that booted from us), so
  /// hosts that never network-booted stay out of it. Null with `recorder`: not recorded.
  pxe::events::Sink* boot_events = nullptr;
  /// What a caller may make the unauthenticated routes (/v1/join, /v1/renew) refuse before
  /// it is answered 429 with Retry-After.
  shared::ratelimit::LimiterOptions refusals;
  /// Retry-After of a report answered 429 (the coordinator's report_interval: by then the
  /// node has a report to spend again).
  std::chrono::seconds report_retry_after{10};
  /// Figures of the HTTP server for /metrics; may be empty.
  std::function<shared::http::ServerStats()> server_stats;
  /// The text GET /metrics answers with (the whole appliance's figures, of which
  /// metrics_text() is a part); empty: metrics_text() alone.
  std::function<std::string()> metrics;
};

class Api {
 public:
  /// `coordinator` must outlive every request handed to handle() and the blocking pool's work.
  Api(boost::asio::io_context& io, boost::asio::thread_pool& blocking,
      coordinator::Coordinator& coordinator, ApiOptions options = {});
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;
  ~Api();

  /// The shared::http::Handler. Called on a connection's strand; never blocks, never throws.
  void handle(shared::http::Request request, shared::http::Reply reply);

  /// Answers every parked long-poll with 204 (the agent polls again) and answers new ones at
  /// once, so the HTTP server can drain. Thread-safe.
  void stop();

  /// Prometheus text: requests by route and status, parked long-polls, revision.
  [[nodiscard]] std::string metrics_text() const;
  /// Long-polls currently parked.
  [[nodiscard]] std::size_t parked() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace lab::bootstrap::api
