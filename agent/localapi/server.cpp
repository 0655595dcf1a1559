#include "agent/localapi/server.hpp"

#include <system_error>

namespace lab::agent::localapi {
namespace {

shared::http::Limits local_limits() {
  shared::http::Limits l;
  l.body_bytes = 4096;  // every route is a GET
  l.read_timeout = std::chrono::milliseconds(10000);
  l.max_connections = 256;
  return l;
}

}  // namespace

Server::Server(boost::asio::io_context& io, std::shared_ptr<const Api> api)
    : api_(std::move(api)),
      server_(
          io,
          [api = api_](const shared::http::Request& req, const shared::http::Reply& reply) {
            reply(api->handle(req));
          },
          local_limits()) {}

Result<void> Server::listen(const std::filesystem::path& socket) {
  std::error_code ec;
  std::filesystem::create_directories(socket.parent_path(), ec);
  return server_.listen_unix(socket, 0666);
}

}  // namespace lab::agent::localapi
