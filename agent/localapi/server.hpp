#pragma once
// The local API on a unix socket (SO_PEERCRED identifies callers). Asio stays in shared/http.

#include "agent/localapi/api.hpp"
#include "shared/http/server/server.hpp"

#include <filesystem>
#include <memory>

namespace lab::agent::localapi {

/// Listens on `socket` (mode 0666: every local user may ask; Api decides what they get).
/// Handlers run on the io_context; they only read the in-memory State.
class Server {
 public:
  Server(boost::asio::io_context& io, std::shared_ptr<const Api> api);
  Result<void> listen(const std::filesystem::path& socket);
  void stop(std::function<void()> stopped) { server_.stop(std::move(stopped)); }

 private:
  std::shared_ptr<const Api> api_;
  shared::http::Server server_;
};

}  // namespace lab::agent::localapi
