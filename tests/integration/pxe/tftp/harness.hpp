#pragma once

// An in-process TFTP server on its own io thread (optionally inside a network namespace), the
// events it reports, and a raw UDP client for exact packet checks.
#include "pxe/events/event.hpp"
#include "pxe/tftp/server/server.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace lab::tests::tftp {

class RecordingSink final : public pxe::events::Sink {
 public:
  void record(pxe::events::Event event) override;
  [[nodiscard]] std::vector<pxe::events::Event> events() const;
  /// The events of one kind, in order.
  [[nodiscard]] std::vector<pxe::events::Event> of(pxe::events::Kind kind) const;

 private:
  mutable std::mutex mutex_;
  std::vector<pxe::events::Event> events_;
};

/// The value of `key` in an event's detail, or "" when absent.
std::string detail(const pxe::events::Event& e, std::string_view key);

class TestServer {
 public:
  /// Starts on 127.0.0.1, port 0 unless `config` says otherwise; inside `netns` when given.
  /// Throws std::runtime_error when the server does not start.
  explicit TestServer(pxe::tftp::server::ServerConfig config, const std::string& netns = {});
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;
  ~TestServer();

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] const RecordingSink& sink() const noexcept { return sink_; }
  [[nodiscard]] std::size_t active_transfers() const { return server_->active_transfers(); }

 private:
  std::unique_ptr<boost::asio::io_context> io_;
  RecordingSink sink_;
  std::unique_ptr<pxe::tftp::server::Server> server_;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

/// A blocking UDP socket speaking raw TFTP to a server on 127.0.0.1, itself bound to `address`
/// (another loopback address, such as 127.0.0.2, is another client host to the server).
class RawClient {
 public:
  explicit RawClient(const std::string& address = "127.0.0.1");
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  ~RawClient();

  void send(std::uint16_t port, const std::vector<std::uint8_t>& bytes) const;
  struct Datagram {
    std::vector<std::uint8_t> bytes;
    std::uint16_t from_port = 0;
  };
  /// The next datagram, or nullopt after `timeout`.
  std::optional<Datagram> receive(std::chrono::milliseconds timeout) const;

 private:
  int fd_ = -1;
};

/// Deterministic pseudo-random bytes (a file that compresses badly and differs per seed).
void write_pattern(const std::filesystem::path& path, std::size_t size, std::uint32_t seed);
/// True when both files exist and have the same bytes.
bool same_content(const std::filesystem::path& a, const std::filesystem::path& b);

}  // namespace lab::tests::tftp
