#include "shared/http/server/delayed_reply.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>

namespace lab::shared::http {

struct DelayedReplies::State {
  State(boost::asio::io_context& i, std::size_t max) : io(i), max_pending(max) {}
  boost::asio::io_context& io;
  std::size_t max_pending;
  std::atomic<std::size_t> pending{0};
};

DelayedReplies::DelayedReplies(boost::asio::io_context& io, std::size_t max_pending)
    : state_(std::make_shared<State>(io, max_pending)) {}

DelayedReplies::~DelayedReplies() = default;

void DelayedReplies::reply_after(std::chrono::milliseconds delay, Reply reply, Response response) {
  if (state_->pending.fetch_add(1) >= state_->max_pending) {
    state_->pending.fetch_sub(1);
    reply(std::move(response));
    return;
  }
  auto timer = std::make_shared<boost::asio::steady_timer>(state_->io, delay);
  // The timer keeps itself alive through the handler; a stopped io_context drops it, and the
  // connection it would have answered is closed by the server's own shutdown.
  timer->async_wait([state = state_, timer, reply = std::move(reply),
                     response = std::move(response)](const boost::system::error_code&) mutable {
    state->pending.fetch_sub(1);
    reply(std::move(response));
  });
}

std::size_t DelayedReplies::pending() const {
  return state_->pending.load();
}

}  // namespace lab::shared::http
