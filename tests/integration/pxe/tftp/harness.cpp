#include "tests/integration/pxe/tftp/harness.hpp"

#include <boost/asio/io_context.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <iterator>
#include <stdexcept>

namespace lab::tests::tftp {

void RecordingSink::record(pxe::events::Event event) {
  const std::lock_guard lock(mutex_);
  events_.push_back(std::move(event));
}

std::vector<pxe::events::Event> RecordingSink::events() const {
  const std::lock_guard lock(mutex_);
  return events_;
}

std::vector<pxe::events::Event> RecordingSink::of(pxe::events::Kind kind) const {
  std::vector<pxe::events::Event> out;
  for (auto& e : events()) {
    if (e.kind == kind)
      out.push_back(e);
  }
  return out;
}

std::string detail(const pxe::events::Event& e, std::string_view key) {
  for (const auto& [k, v] : e.detail) {
    if (k == key)
      return v;
  }
  return {};
}

TestServer::TestServer(pxe::tftp::server::ServerConfig config, const std::string& netns)
    : io_(std::make_unique<boost::asio::io_context>()) {
  if (config.address == "0.0.0.0")
    config.address = "127.0.0.1";
  std::promise<std::string> started;
  auto result = started.get_future();
  // The io thread enters the namespace before it creates any socket: the listening socket and
  // every per-transfer socket then live in that namespace.
  thread_ = std::thread([this, config = std::move(config), netns, &started]() mutable {
    if (!netns.empty()) {
      const std::string path = "/var/run/netns/" + netns;
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
        if (fd >= 0)
          ::close(fd);
        started.set_value("cannot enter namespace " + netns);
        return;
      }
      ::close(fd);
    }
    server_ = std::make_unique<pxe::tftp::server::Server>(*io_, std::move(config), sink_);
    if (auto r = server_->start(); !r) {
      started.set_value(r.error().message());
      return;
    }
    port_ = server_->port();
    started.set_value({});
    io_->run();
  });
  const std::string error = result.get();
  if (!error.empty()) {
    thread_.join();
    throw std::runtime_error("TFTP server did not start: " + error);
  }
}

TestServer::~TestServer() {
  io_->stop();
  thread_.join();
  server_.reset();
}

RawClient::RawClient(const std::string& address)
    : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
  if (fd_ < 0)
    throw std::runtime_error("socket");
  sockaddr_in local{};
  local.sin_family = AF_INET;
  if (::inet_pton(AF_INET, address.c_str(), &local.sin_addr) != 1 ||
      ::bind(fd_, reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0) {
    ::close(fd_);
    throw std::runtime_error("bind " + address);
  }
}

RawClient::~RawClient() {
  ::close(fd_);
}

void RawClient::send(std::uint16_t port, const std::vector<std::uint8_t>& bytes) const {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(port);
  if (::sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&to),
               sizeof to) < 0) {
    throw std::runtime_error("sendto");
  }
}

std::optional<RawClient::Datagram> RawClient::receive(std::chrono::milliseconds timeout) const {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0)
    return std::nullopt;
  Datagram d;
  d.bytes.resize(70000);
  sockaddr_in from{};
  socklen_t len = sizeof from;
  const ssize_t n =
      ::recvfrom(fd_, d.bytes.data(), d.bytes.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
  if (n < 0)
    return std::nullopt;
  d.bytes.resize(static_cast<std::size_t>(n));
  d.from_port = ntohs(from.sin_port);
  return d;
}

void write_pattern(const std::filesystem::path& path, std::size_t size, std::uint32_t seed) {
  std::vector<char> bytes(size);
  std::uint32_t x = seed | 1U;
  for (auto& b : bytes) {
    // xorshift32
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<char>(x & 0xff);
  }
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

bool same_content(const std::filesystem::path& a, const std::filesystem::path& b) {
  std::ifstream fa(a, std::ios::binary);
  std::ifstream fb(b, std::ios::binary);
  if (!fa || !fb)
    return false;
  return std::equal(std::istreambuf_iterator<char>(fa), std::istreambuf_iterator<char>(),
                    std::istreambuf_iterator<char>(fb), std::istreambuf_iterator<char>());
}

}  // namespace lab::tests::tftp
