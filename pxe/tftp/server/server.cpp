#include "pxe/tftp/server/server.hpp"

#include "pxe/tftp/engine/admission.hpp"
#include "pxe/tftp/server/file_cache.hpp"
#include "pxe/tftp/server/root.hpp"
#include "shared/log/log.hpp"
#include "shared/metrics/metrics.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <map>
#include <mutex>
#include <optional>

namespace lab::pxe::tftp::server {
namespace {

namespace asio = boost::asio;
using asio::ip::udp;
using Strand = asio::strand<asio::io_context::executor_type>;

const char* message_of(ServerError e) noexcept {
  switch (e) {
    case ServerError::bad_listen_address:
      return "listen address is not an IP address";
    case ServerError::bind_failed:
      return "cannot bind the TFTP port";
  }
  return "unknown server error";
}

constexpr std::size_t kRequestBuffer = 4096;
constexpr std::size_t kSendBatch = 64;
// Clients send ACKs (4 bytes) and ERRORs; a longer datagram is truncated and ignored as corrupt.
constexpr std::size_t kTransferBuffer = 1024;

std::string endpoint_key(const udp::endpoint& e) {
  return e.address().to_string() + "#" + std::to_string(e.port());
}

// The TFTP error packet that answers a failure to open a requested file.
wire::ErrorPacket answer_for(const Error& e) {
  using wire::ErrorCode;
  if (e == RootError::not_found)
    return {static_cast<std::uint16_t>(ErrorCode::file_not_found), "file not found"};
  if (e == RootError::traversal || e == RootError::escapes_root || e == RootError::permission ||
      e == RootError::not_regular) {
    return {static_cast<std::uint16_t>(ErrorCode::access_violation), "access violation"};
  }
  return {static_cast<std::uint16_t>(ErrorCode::not_defined), "cannot read file"};
}

// The server's figures in a metrics registry, resolved once; every member is null without one.
struct Metrics {
  shared::metrics::Counter* done = nullptr;
  shared::metrics::Counter* failed = nullptr;
  shared::metrics::Counter* refused = nullptr;
  shared::metrics::Counter* bytes = nullptr;
  shared::metrics::Counter* retransmissions = nullptr;
  shared::metrics::Gauge* active = nullptr;

  explicit Metrics(shared::metrics::Registry* r) {
    if (r == nullptr)
      return;
    auto& transfers = r->counter("lab_tftp_transfers_total",
                                 "TFTP read requests by outcome: done (every block acknowledged), "
                                 "failed (started, then timed out or aborted by the client), "
                                 "refused (answered with an ERROR: no such file, access, limits).",
                                 {"outcome"});
    done = &transfers.with({"done"});
    failed = &transfers.with({"failed"});
    refused = &transfers.with({"refused"});
    bytes = &r->counter("lab_tftp_bytes_total", "File bytes the clients acknowledged.").get();
    retransmissions = &r->counter("lab_tftp_retransmissions_total",
                                  "DATA packets sent again after a timeout or a duplicate ACK.")
                           .get();
    active = &r->gauge("lab_tftp_transfers_active", "Transfers running now.").get();
  }
  static void inc(shared::metrics::Counter* c, std::uint64_t n = 1) {
    if (c != nullptr)
      c->inc(n);
  }
};

long long ms_since(engine::TimePoint start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(engine::Clock::now() - start)
      .count();
}

}  // namespace

const boost::system::error_category& server_category() noexcept {
  static const ErrorCategory<ServerError> kCategory("lab.tftp.server", &message_of);
  return kCategory;
}

class Session;

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  Impl(asio::io_context& io_context, ServerConfig server_config, events::Sink& sink)
      : io(io_context),
        config(std::move(server_config)),
        events(sink),
        cache(config.cache_max_file, config.cache_max_total),
        strand(asio::make_strand(io)),
        listener(strand),
        admission(config.max_transfers, config.max_transfers_per_client),
        metrics(config.metrics) {}

  void receive();
  void handle_request(std::size_t n, const udp::endpoint& client);
  void refuse(const udp::endpoint& client, const std::string& file, const wire::ErrorPacket& answer,
              const std::string& why);
  void release(const std::string& key, const std::string& address);
  void record(events::Kind kind, const udp::endpoint& client,
              std::vector<std::pair<std::string, std::string>> detail) {
    events.record({.at = std::chrono::system_clock::now(),
                   .kind = kind,
                   .mac = {},
                   .ip = client.address().to_string(),
                   .detail = std::move(detail)});
  }

  asio::io_context& io;
  ServerConfig config;
  events::Sink& events;
  std::optional<Root> root;
  FileCache cache;
  Strand strand;  // the listening socket's
  udp::socket listener;
  udp::endpoint bound;
  std::array<std::uint8_t, kRequestBuffer> rx{};
  udp::endpoint from;
  shared::log::Logger log{"tftp"};

  mutable std::mutex mutex;  // guards what follows
  // Endpoints with a transfer running, and that transfer (to hand it a repeated request).
  std::map<std::string, std::weak_ptr<Session>> clients;
  // The same transfers counted in all and per client address. Checked and counted only on the
  // listener's strand (handle_request), so a check stays true until the transfer is counted;
  // sessions only ever release.
  engine::Admission admission;
  bool stopping = false;
  std::function<void()> stopped;
  Metrics metrics;  // after the mutex's members: its pointers never change
};

// One transfer: its own socket (the server's TID), strand and timer.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<Server::Impl> owner, udp::socket socket, udp::endpoint client,
          std::string file, engine::Transfer transfer, const Strand& strand)
      : owner_(std::move(owner)),
        socket_(std::move(socket)),
        timer_(strand),
        client_(std::move(client)),
        key_(endpoint_key(client_)),
        file_(std::move(file)),
        transfer_(std::move(transfer)),
        started_(engine::Clock::now()) {}

  /// The client sent its RRQ again (on port 69): hand it to the transfer on its strand.
  void repeated_request() {
    asio::post(timer_.get_executor(), [self = shared_from_this()] {
      if (self->done_)
        return;
      self->transfer_.on_repeated_request(engine::Clock::now());
      self->after_step();
    });
  }

  void run() {
    auto self = shared_from_this();
    asio::post(timer_.get_executor(), [self] {
      const auto& n = self->transfer_.negotiation();
      self->owner_->record(events::Kind::tftp_start, self->client_,
                           {{"file", self->file_},
                            {"size", std::to_string(self->transfer_.file_size())},
                            {"blksize", std::to_string(n.blksize)},
                            {"windowsize", std::to_string(n.windowsize)}});
      self->transfer_.start(engine::Clock::now());
      self->after_step();
      if (!self->done_)
        self->receive();
    });
  }

 private:
  // One sendmmsg per window rather than one send per block: a window of 64 blocks costs one
  // system call instead of 64.
  void flush() {
    const auto out = transfer_.outgoing();
    std::array<mmsghdr, kSendBatch> msgs{};
    std::array<iovec, kSendBatch> iov{};
    std::size_t done = 0;
    while (done < out.size()) {
      const std::size_t n = std::min(out.size() - done, kSendBatch);
      for (std::size_t i = 0; i < n; ++i) {
        const auto& d = out[done + i];
        // sendmmsg does not write through iov_base; the cast only satisfies the C signature.
        iov[i] = {const_cast<std::uint8_t*>(d.data()), d.size()};  // NOLINT(*-const-cast)
        msgs[i] = {};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      const int sent =
          ::sendmmsg(socket_.native_handle(), msgs.data(), static_cast<unsigned>(n), MSG_DONTWAIT);
      if (sent < 0 && errno == ECONNREFUSED) {
        // ICMP port unreachable, reported on the connected socket: the client's TID is closed
        // and no retransmission can reach it. after_step() sees the transfer finished.
        transfer_.on_client_gone();
        return;
      }
      // A full send buffer counts as lost datagrams: the window is sent again after a go-back
      // or a timeout.
      if (sent <= 0)
        return;
      done += static_cast<std::size_t>(sent);
    }
  }

  void after_step() {
    flush();
    if (transfer_.finished()) {
      finish();
      return;
    }
    if (!timer_armed_) {
      timer_armed_ = true;
      timer_.expires_at(transfer_.deadline());
      timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        self->timer_armed_ = false;
        if (ec || self->done_)
          return;
        // The deadline moves forward with every acknowledged window; the timer is set once
        // and followed up here instead of being re-armed per datagram.
        self->transfer_.on_timer(engine::Clock::now());
        self->after_step();
      });
    }
  }

  void receive() {
    socket_.async_receive(
        asio::buffer(rx_),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
          if (self->done_)
            return;
          if (ec == asio::error::operation_aborted)
            return;
          if (ec == asio::error::connection_refused) {
            // ICMP port unreachable: the client went away.
            self->transfer_.on_client_gone();
            self->finish();
            return;
          }
          if (!ec) {
            self->transfer_.on_datagram({self->rx_.data(), n}, engine::Clock::now());
            self->after_step();
            if (self->done_)
              return;
          }
          // Other errors are transient or end with the retransmission limit.
          self->receive();
        });
  }

  void finish() {
    done_ = true;
    timer_.cancel();
    boost::system::error_code ignored;
    socket_.close(ignored);
    const auto& n = transfer_.negotiation();
    const auto ms = ms_since(started_);
    Metrics::inc(owner_->metrics.bytes, transfer_.bytes_acked());
    Metrics::inc(owner_->metrics.retransmissions, transfer_.retransmissions());
    Metrics::inc(transfer_.succeeded() ? owner_->metrics.done : owner_->metrics.failed);
    if (transfer_.succeeded()) {
      owner_->record(events::Kind::tftp_done, client_,
                     {{"file", file_},
                      {"bytes", std::to_string(transfer_.bytes_acked())},
                      {"blksize", std::to_string(n.blksize)},
                      {"windowsize", std::to_string(n.windowsize)},
                      {"ms", std::to_string(ms)}});
      if (owner_->log.enabled(shared::log::Level::debug)) {
        owner_->log.debug("transfer done", {{"ip", client_.address().to_string()},
                                            {"file", file_},
                                            {"bytes", transfer_.bytes_acked()},
                                            {"blksize", n.blksize},
                                            {"windowsize", n.windowsize},
                                            {"retransmissions", transfer_.retransmissions()},
                                            {"ms", ms}});
      }
    } else {
      const Error& e = transfer_.error();
      owner_->record(events::Kind::tftp_error, client_,
                     {{"file", file_},
                      {"error", e.message()},
                      {"bytes", std::to_string(transfer_.bytes_acked())},
                      {"blksize", std::to_string(n.blksize)},
                      {"windowsize", std::to_string(n.windowsize)},
                      {"ms", std::to_string(ms)}});
      owner_->log.info("transfer failed", {{"ip", client_.address().to_string()},
                                           {"file", file_},
                                           {"error", e.message()},
                                           {"bytes", transfer_.bytes_acked()}});
    }
    owner_->release(key_, client_.address().to_string());
  }

  std::shared_ptr<Server::Impl> owner_;
  udp::socket socket_;
  asio::steady_timer timer_;
  udp::endpoint client_;
  std::string key_;
  std::string file_;
  engine::Transfer transfer_;
  engine::TimePoint started_;
  std::array<std::uint8_t, kTransferBuffer> rx_{};
  bool timer_armed_ = false;
  bool done_ = false;
};

void Server::Impl::receive() {
  listener.async_receive_from(
      asio::buffer(rx), from,
      [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
        if (ec == asio::error::operation_aborted || !self->listener.is_open())
          return;
        if (!ec)
          self->handle_request(n, self->from);
        self->receive();
      });
}

void Server::Impl::refuse(const udp::endpoint& client, const std::string& file,
                          const wire::ErrorPacket& answer, const std::string& why) {
  // Recorded before answering, so whoever sees the answer also finds the event.
  record(events::Kind::tftp_error, client, {{"file", file}, {"error", why}});
  Metrics::inc(metrics.refused);
  log.info("request refused",
           {{"ip", client.address().to_string()}, {"file", file}, {"error", why}});
  boost::system::error_code ignored;
  listener.send_to(asio::buffer(wire::serialize(answer)), client, 0, ignored);
}

void Server::Impl::release(const std::string& key, const std::string& address) {
  std::function<void()> done;
  {
    const std::lock_guard lock(mutex);
    if (clients.erase(key) != 0) {
      admission.ended(address);
      if (metrics.active != nullptr)
        metrics.active->add(-1);
    }
    if (stopping && clients.empty() && stopped)
      done = std::exchange(stopped, nullptr);
  }
  if (done)
    asio::post(io, std::move(done));
}

void Server::Impl::handle_request(std::size_t n, const udp::endpoint& client) {
  using wire::ErrorCode;
  auto code = [](ErrorCode c) { return static_cast<std::uint16_t>(c); };
  auto parsed = wire::parse({rx.data(), n});
  if (!parsed) {
    const bool option_problem = parsed.error() == wire::WireError::option_duplicate ||
                                parsed.error() == wire::WireError::option_value_invalid ||
                                parsed.error() == wire::WireError::option_value_absurd ||
                                parsed.error() == wire::WireError::too_many_options;
    refuse(client, {},
           {code(option_problem ? ErrorCode::option_refused : ErrorCode::illegal_operation),
            parsed.error().message()},
           parsed.error().message());
    return;
  }
  const auto* request = std::get_if<wire::Request>(&*parsed);
  if (request == nullptr) {
    // A stray DATA/ACK/ERROR on port 69 belongs to no transfer; answering could loop.
    return;
  }
  const std::string& file = request->filename;
  if (request->opcode == wire::Opcode::wrq) {
    refuse(client, file, {code(ErrorCode::access_violation), "read-only server"},
           "write request refused");
    return;
  }
  if (request->mode == wire::Mode::mail) {
    refuse(client, file, {code(ErrorCode::illegal_operation), "mail mode not supported"},
           "mail mode");
    return;
  }
  const std::string key = endpoint_key(client);
  {
    std::shared_ptr<Session> running;
    {
      const std::lock_guard lock(mutex);
      if (auto it = clients.find(key); it != clients.end()) {
        running = it->second.lock();
        if (!running)
          return;  // finishing right now
      }
    }
    // The client repeated its request: our first answer was lost. The transfer running for it
    // answers again.
    if (running) {
      running->repeated_request();
      return;
    }
  }
  const std::string address = client.address().to_string();
  engine::Admission::Verdict verdict{};
  {
    const std::lock_guard lock(mutex);
    verdict = admission.check(address);
  }
  if (verdict == engine::Admission::Verdict::server_busy) {
    record(events::Kind::tftp_error, client, {{"file", file}, {"error", "too many transfers"}});
    Metrics::inc(metrics.refused);
    boost::system::error_code ignored;
    listener.send_to(asio::buffer(wire::serialize(wire::ErrorPacket{code(ErrorCode::not_defined),
                                                                    "server busy, try again"})),
                     client, 0, ignored);
    return;
  }
  if (verdict == engine::Admission::Verdict::client_busy) {
    refuse(client, file,
           {code(ErrorCode::not_defined), "too many transfers from this address, try again later"},
           "too many transfers from this address (" +
               std::to_string(config.max_transfers_per_client) + " running)");
    return;
  }
  auto opened = root->open_file(file);
  if (!opened) {
    refuse(client, file, answer_for(opened.error()), opened.error().message());
    return;
  }
  auto source = cache.source(std::move(*opened), request->mode == wire::Mode::netascii);
  if (!source) {
    refuse(client, file, {code(ErrorCode::not_defined), "cannot read file"},
           source.error().message());
    return;
  }
  const Strand session_strand = asio::make_strand(io);
  udp::socket socket(session_strand);
  boost::system::error_code ec;
  socket.open(client.protocol(), ec);
  if (!ec)
    socket.bind(udp::endpoint(bound.address(), 0), ec);
  if (!ec)
    socket.connect(client, ec);
  if (ec) {
    refuse(client, file, {code(ErrorCode::not_defined), "server error"},
           "transfer socket: " + ec.message());
    return;
  }
  engine::Transfer transfer(*request, std::move(*source), config.transfer);
  auto session = std::make_shared<Session>(shared_from_this(), std::move(socket), client, file,
                                           std::move(transfer), session_strand);
  {
    const std::lock_guard lock(mutex);
    clients.emplace(key, session);
    admission.started(address);
    if (metrics.active != nullptr)
      metrics.active->add(1);
  }
  session->run();
}

Server::Server(boost::asio::io_context& io, ServerConfig config, events::Sink& events)
    : impl_(std::make_shared<Impl>(io, std::move(config), events)) {}

Server::~Server() {
  boost::system::error_code ignored;
  impl_->listener.close(ignored);
}

Result<void> Server::start() {
  auto& impl = *impl_;
  LAB_TRY_ASSIGN(auto root, Root::open(impl.config.root));
  impl.root.emplace(std::move(root));
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(impl.config.address, ec);
  if (ec)
    return Error(ServerError::bad_listen_address, "'" + impl.config.address + "'");
  const udp::endpoint endpoint(address, impl.config.port);
  impl.listener.open(endpoint.protocol(), ec);
  if (!ec)
    impl.listener.set_option(udp::socket::reuse_address(true), ec);
  if (!ec)
    impl.listener.bind(endpoint, ec);
  if (ec) {
    boost::system::error_code ignored;
    impl.listener.close(ignored);
    return Error(
        ServerError::bind_failed,
        impl.config.address + ":" + std::to_string(impl.config.port) + ": " + ec.message());
  }
  impl.bound = impl.listener.local_endpoint(ec);
  asio::post(impl.strand, [self = impl_] { self->receive(); });
  return {};
}

std::uint16_t Server::port() const {
  return impl_->bound.port();
}

std::size_t Server::active_transfers() const {
  const std::lock_guard lock(impl_->mutex);
  return impl_->clients.size();
}

void Server::stop(std::function<void()> stopped) {
  asio::post(impl_->strand, [self = impl_, stopped = std::move(stopped)]() mutable {
    boost::system::error_code ignored;
    self->listener.close(ignored);
    std::function<void()> now;
    {
      const std::lock_guard lock(self->mutex);
      self->stopping = true;
      // With transfers in flight, the last one to finish calls `stopped` (release()).
      if (self->clients.empty())
        now = std::move(stopped);
      else
        self->stopped = std::move(stopped);
    }
    if (now)
      asio::post(self->io, std::move(now));
  });
}

}  // namespace lab::pxe::tftp::server
