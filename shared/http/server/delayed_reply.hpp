#pragma once
// Answering a caller later without holding a thread: the tarpit for addresses that keep being
// refused. A refused stranger whose answers come a second late can send only as many requests
// a second as it holds connections (which the server bounds), so its flood costs the server
// next to nothing while legitimate callers are served at once.
#include "shared/http/server/server.hpp"

#include <chrono>
#include <cstddef>
#include <memory>

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace lab::shared::http {

/// Replies held back at once, past which replies go out without delay (each holds a timer).
class DelayedReplies {
 public:
  DelayedReplies(boost::asio::io_context& io, std::size_t max_pending);
  ~DelayedReplies();
  DelayedReplies(const DelayedReplies&) = delete;
  DelayedReplies& operator=(const DelayedReplies&) = delete;

  /// Calls reply(response) after `delay` on the io_context (at once when max_pending replies
  /// are already waiting). Thread-safe.
  void reply_after(std::chrono::milliseconds delay, Reply reply, Response response);
  /// Replies waiting now.
  [[nodiscard]] std::size_t pending() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace lab::shared::http
