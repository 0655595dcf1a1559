#include "shared/http/server/server.hpp"

#include "shared/crypto/x509.hpp"
#include "shared/http/server/tls_stream.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <map>
#include <mutex>
#include <type_traits>

namespace lab::shared::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using Tcp = asio::ip::tcp;
using UnixProtocol = asio::local::stream_protocol;

using TcpStream = beast::tcp_stream;
using TlsStream = detail::TlsStream;
using UnixStream = beast::basic_stream<UnixProtocol>;

constexpr std::size_t kFileChunk = std::size_t{256} * 1024;
// A sendfile loop yields to other connections on the strand's io_context after this much.
constexpr std::size_t kSendfileBurst = std::size_t{8} * 1024 * 1024;
// How often a connection that sent bytes while its reply is pending is checked for a hang-up.
constexpr std::chrono::seconds kHangupRecheck{1};

template <class Stream>
constexpr bool kIsTls = std::is_same_v<Stream, TlsStream>;

Error server_error(const boost::system::error_code& ec, std::string detail) {
  return {ec, std::move(detail)};
}

}  // namespace

// ---- Connection registry --------------------------------------------------------------------

class ConnectionBase {
 public:
  virtual ~ConnectionBase() = default;
  /// Posts to the strand: close if idle, else close after the response in flight.
  virtual void shutdown() = 0;
  /// Writes a handler's response (on the strand).
  virtual void send(Response response) = 0;
};

class Server::Impl : public std::enable_shared_from_this<Server::Impl> {
 public:
  Impl(asio::io_context& io, Handler handler, Limits limits)
      : io_(io), handler_(std::move(handler)), limits_(limits) {}

  asio::io_context& io_;
  Handler handler_;
  Limits limits_;

  std::mutex mu_;
  std::vector<std::unique_ptr<Tcp::acceptor>> tcp_acceptors_;
  std::vector<std::unique_ptr<UnixProtocol::acceptor>> unix_acceptors_;
  std::vector<std::filesystem::path> unix_paths_;
  std::map<ConnectionBase*, std::weak_ptr<ConnectionBase>> connections_;
  bool stopping_ = false;
  std::function<void()> stopped_;

  std::atomic<std::uint64_t> connections_total_{0};
  std::atomic<std::uint64_t> requests_total_{0};
  std::atomic<std::uint64_t> rejected_total_{0};

  bool add(ConnectionBase* c, std::weak_ptr<ConnectionBase> w) {
    std::lock_guard lock(mu_);
    if (stopping_ || connections_.size() >= limits_.max_connections)
      return false;
    connections_.emplace(c, std::move(w));
    ++connections_total_;
    return true;
  }

  void remove(ConnectionBase* c) {
    std::function<void()> done;
    {
      std::lock_guard lock(mu_);
      connections_.erase(c);
      if (stopping_ && connections_.empty() && stopped_)
        done = std::exchange(stopped_, nullptr);
    }
    if (done)
      asio::post(io_, std::move(done));
  }

  [[nodiscard]] bool stopping() {
    std::lock_guard lock(mu_);
    return stopping_;
  }

  // The TLS context of a listener; reload_tls() replaces it for connections accepted later.
  struct TlsSlot {
    std::mutex mu;
    std::shared_ptr<ssl::context> ctx;
    // Contexts replaced by reload_tls(): connections made with them may still use them (asio
    // keeps callbacks in the context), so they stay until the server goes. One per reload.
    std::vector<std::shared_ptr<ssl::context>> retired;
    std::shared_ptr<ssl::context> current() {
      const std::lock_guard lock(mu);
      return ctx;
    }
  };
  std::vector<std::shared_ptr<TlsSlot>> tls_slots_;  // under mu_

  void accept_tcp(Tcp::acceptor& acceptor, const std::shared_ptr<TlsSlot>& tls);
  void accept_unix(UnixProtocol::acceptor& acceptor, const std::filesystem::path& path);
};

// ---- Reply guard ----------------------------------------------------------------------------

// Shared by every copy of a Reply: the first call wins; if none calls, the client gets 500.
struct ReplyState {
  std::shared_ptr<ConnectionBase> connection;
  asio::any_io_executor executor;
  std::atomic<bool> done{false};

  // Hands the connection over to the write: a handler that keeps a copy of a used Reply
  // must not keep the connection alive.
  void deliver(Response response) {
    if (done.exchange(true))
      return;
    asio::post(executor, [c = std::move(connection), r = std::move(response)]() mutable {
      c->send(std::move(r));
    });
  }
  ReplyState(std::shared_ptr<ConnectionBase> c, asio::any_io_executor e)
      : connection(std::move(c)), executor(std::move(e)) {}
  ReplyState(const ReplyState&) = delete;
  ReplyState& operator=(const ReplyState&) = delete;
  ~ReplyState() {
    if (!done.load())
      deliver(Response::error(500, "internal error"));
  }
};

// ---- Connection -----------------------------------------------------------------------------

template <class Stream>
class Connection final : public ConnectionBase,
                         public std::enable_shared_from_this<Connection<Stream>> {
 public:
  Connection(std::shared_ptr<Server::Impl> server, Stream stream, Peer peer)
      : server_(std::move(server)),
        stream_(std::move(stream)),
        read_timer_(stream_.get_executor()),
        write_timer_(stream_.get_executor()),
        peer_(std::move(peer)) {}

  ~Connection() override { server_->remove(this); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start() {
    if constexpr (kIsTls<Stream>) {
      beast::get_lowest_layer(stream_).expires_after(server_->limits_.handshake_timeout);
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](
                                  const boost::system::error_code& ec) { self->on_handshake(ec); });
    } else {
      asio::dispatch(stream_.get_executor(),
                     [self = this->shared_from_this()] { self->read_request(); });
    }
  }

  void shutdown() override {
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
      self->closing_ = true;
      if (!self->busy_)
        self->close();
    });
  }

  void send(Response response) override {
    stop_hangup_watch();
    if (closing_)
      response.close = true;
    const bool keep_alive = keep_alive_ && !response.close;
    if (response.file) {
      write_file(std::move(response), keep_alive);
    } else {
      write_string(std::move(response), keep_alive);
    }
  }

 private:
  using Self = Connection<Stream>;

  void on_handshake(const boost::system::error_code& ec) {
    if (ec) {
      close();
      return;
    }
    if constexpr (kIsTls<Stream>) {
      SSL* ssl = stream_.native_handle();
      if (X509* cert = SSL_get0_peer_certificate(ssl)) {
        const auto c = crypto::Certificate::from_native(cert);
        peer_.client_cert = Peer::ClientCertificate{c.serial(), c.common_name(), c.not_after(),
                                                    SSL_get_verify_result(ssl) == X509_V_OK};
      }
    }
    read_request();
  }

  void read_request() {
    if (closing_) {
      close();
      return;
    }
    parser_ = std::make_unique<bhttp::request_parser<bhttp::string_body>>();
    parser_->header_limit(static_cast<std::uint32_t>(server_->limits_.header_bytes));
    parser_->body_limit(server_->limits_.body_bytes);
    // Idle connections hold almost nothing between requests.
    if (buffer_.size() == 0)
      buffer_.shrink_to_fit();
    // The stream's own expiry would close the socket and make a 408 impossible: reads use a
    // timer of their own that cancels them instead.
    beast::get_lowest_layer(stream_).expires_never();
    read_timed_out_ = false;
    read_timer_.expires_after(server_->limits_.read_timeout);
    read_timer_.async_wait([self = this->shared_from_this()](const boost::system::error_code& ec) {
      if (ec)
        return;
      self->read_timed_out_ = true;
      boost::system::error_code ignored;
      beast::get_lowest_layer(self->stream_).socket().cancel(ignored);
    });
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](const boost::system::error_code& ec, std::size_t) {
          self->on_header(ec);
        });
  }

  void on_header(const boost::system::error_code& ec) {
    if (ec) {
      read_failed(ec);
      return;
    }
    const auto& req = parser_->get();
    const auto expect = req[bhttp::field::expect];
    if (!expect.empty() && iequals(expect, "100-continue") && !parser_->is_done()) {
      auto cont =
          std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_, 11);
      bhttp::async_write(
          stream_, *cont,
          [self = this->shared_from_this(), cont](const boost::system::error_code& e, std::size_t) {
            if (e) {
              self->close();
              return;
            }
            self->read_body();
          });
      return;
    }
    read_body();
  }

  void read_body() {
    if (parser_->is_done()) {
      dispatch();
      return;
    }
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](const boost::system::error_code& ec, std::size_t) {
          if (ec) {
            self->read_failed(ec);
            return;
          }
          self->dispatch();
        });
  }

  // ---- A client that hangs up while its reply is pending ----------------------------------
  // Waiting for a reply, the connection reads nothing; a handler that asked (Request::
  // on_hangup) has the socket watched for readability. A peer that closed (FIN or RST) ends
  // the wait: the connection is closed and the handler told, so a parked long-poll does not
  // hold its slot until its timeout. Bytes from a peer still there stay for the next read.

  void watch_hangup(std::uint64_t seq, std::function<void()> fn) {
    if (seq != request_seq_ || !awaiting_reply_)
      return;  // already answered
    if (hung_up_) {
      fn();
      return;
    }
    on_hangup_ = std::move(fn);
    beast::get_lowest_layer(stream_).socket().async_wait(
        asio::socket_base::wait_read,
        [self = this->shared_from_this(), seq](const boost::system::error_code& ec) {
          if (ec == asio::error::operation_aborted)
            return;
          self->check_hangup(seq);
        });
  }

  void check_hangup(std::uint64_t seq) {
    if (seq != request_seq_ || !awaiting_reply_ || !on_hangup_)
      return;
    if (!peer_gone()) {
      // Readable, yet the peer is there: the bytes wait for the next read; look again later
      // rather than spin on a socket that stays readable.
      read_timer_.expires_after(kHangupRecheck);
      read_timer_.async_wait(
          [self = this->shared_from_this(), seq](const boost::system::error_code& ec) {
            if (!ec)
              self->check_hangup(seq);
          });
      return;
    }
    hung_up_ = true;
    closing_ = true;
    auto fn = std::exchange(on_hangup_, nullptr);
    close();
    fn();
  }

  bool peer_gone() {
    pollfd p{};
    p.fd = beast::get_lowest_layer(stream_).socket().native_handle();
    p.events = POLLIN | POLLRDHUP;
    if (::poll(&p, 1, 0) < 0)
      return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
  }

  void stop_hangup_watch() {
    awaiting_reply_ = false;
    if (!on_hangup_)
      return;
    on_hangup_ = nullptr;
    boost::system::error_code ignored;
    beast::get_lowest_layer(stream_).socket().cancel(ignored);
    read_timer_.cancel();
  }

  // A request that could not be read: answer what can be answered, then close.
  void read_failed(const boost::system::error_code& ec) {
    read_timer_.cancel();
    if (read_timed_out_) {
      if (parser_ && parser_->got_some()) {
        reject(408, "request not received in time");
      } else {
        close();  // an idle keep-alive connection
      }
      return;
    }
    if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
      close();
      return;
    }
    if (ec == bhttp::error::header_limit) {
      reject(431, "request headers too large");
    } else if (ec == bhttp::error::body_limit) {
      reject(413, "request body too large");
    } else if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category()) {
      reject(400, "malformed HTTP request");
    } else {
      close();
    }
  }

  void reject(unsigned status, std::string_view message) {
    ++server_->rejected_total_;
    keep_alive_ = false;
    head_ = false;
    busy_ = true;
    Response r = Response::error(status, message);
    r.close = true;
    send(std::move(r));
  }

  void dispatch() {
    read_timer_.cancel();
    auto& msg = parser_->get();
    Request req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    keep_alive_ = msg.keep_alive();
    head_ = msg.method() == bhttp::verb::head;
    const std::string_view target = msg.target();
    const auto q = target.find('?');
    if (!percent_decode(target.substr(0, q), req.path, false) || req.path.empty() ||
        req.path.front() != '/') {
      reject(400, "malformed request target");
      return;
    }
    if (q != std::string_view::npos)
      req.query = parse_query(target.substr(q + 1));
    for (const auto& field : msg) {
      req.headers.add(std::string(field.name_string()), std::string(field.value()));
    }
    req.body = std::move(msg.body());
    req.peer = peer_;
    parser_.reset();
    // A long-poll may park this connection for a minute: keep no read buffer meanwhile.
    if (buffer_.size() == 0)
      buffer_.shrink_to_fit();
    ++server_->requests_total_;
    busy_ = true;
    awaiting_reply_ = true;
    const std::uint64_t seq = ++request_seq_;
    req.on_hangup = [weak = this->weak_from_this(), seq,
                     executor = stream_.get_executor()](std::function<void()> fn) {
      // The executor is copied from the live stream: never empty.
      // NOLINTNEXTLINE(clang-analyzer-core.NullDereference)
      asio::post(executor, [weak, seq, fn = std::move(fn)]() mutable {
        if (auto self = weak.lock())
          self->watch_hangup(seq, std::move(fn));
      });
    };

    auto state = std::make_shared<ReplyState>(this->shared_from_this(), stream_.get_executor());
    Reply reply = [state](Response r) { state->deliver(std::move(r)); };
    try {
      server_->handler_(std::move(req), std::move(reply));
    } catch (const std::exception&) {
      state->deliver(Response::error(500, "internal error"));
    }
  }

  template <class Message>
  void prepare(Message& res, const Response& r, bool keep_alive) {
    res.version(11);
    res.result(r.status);
    for (const auto& [k, v] : r.headers.all())
      res.insert(k, v);
    res.keep_alive(keep_alive);
  }

  void write_string(Response r, bool keep_alive) {
    beast::get_lowest_layer(stream_).expires_after(server_->limits_.write_timeout);
    if (head_) {
      auto res = std::make_shared<bhttp::response<bhttp::empty_body>>();
      prepare(*res, r, keep_alive);
      // 304 and 204 never carry a length (RFC 9110 §8.6); others say what GET would send.
      if (r.status != 304 && r.status != 204)
        res->content_length(r.body.size());
      bhttp::async_write(stream_, *res,
                         [self = this->shared_from_this(), res, keep_alive](
                             const boost::system::error_code& ec, std::size_t) {
                           self->response_done(ec, keep_alive);
                         });
      return;
    }
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
    prepare(*res, r, keep_alive);
    res->body() = std::move(r.body);
    res->prepare_payload();
    bhttp::async_write(stream_, *res,
                       [self = this->shared_from_this(), res, keep_alive](
                           const boost::system::error_code& ec, std::size_t) {
                         self->response_done(ec, keep_alive);
                       });
  }

  void write_file(Response r, bool keep_alive) {
    auto res = std::make_shared<bhttp::response<bhttp::empty_body>>();
    prepare(*res, r, keep_alive);
    res->content_length(r.file->length);
    beast::get_lowest_layer(stream_).expires_after(server_->limits_.write_timeout);
    bhttp::async_write(
        stream_, *res,
        [self = this->shared_from_this(), res, body = std::move(*r.file), keep_alive](
            const boost::system::error_code& ec, std::size_t) mutable {
          if (ec || self->head_ || body.length == 0) {
            self->response_done(ec, keep_alive);
            return;
          }
          self->file_ = std::move(body);
          self->file_keep_alive_ = keep_alive;
          if constexpr (kIsTls<Stream>) {
            self->file_chunk_.resize(kFileChunk);
            self->send_file_chunk();
          } else {
            beast::get_lowest_layer(self->stream_).socket().native_non_blocking(true);
            self->send_file_zero_copy();
          }
        });
  }

  // Plain TCP and unix sockets: sendfile(2) straight from the page cache.
  void send_file_zero_copy() {
    auto& sock = beast::get_lowest_layer(stream_).socket();
    std::size_t burst = 0;
    while (file_->length > 0) {
      auto off = static_cast<off_t>(file_->offset);
      const std::size_t want = std::min<std::uint64_t>(file_->length, kFileChunk * 4);
      const ssize_t n = ::sendfile(sock.native_handle(), file_->file->fd(), &off, want);
      if (n > 0) {
        file_->offset += static_cast<std::uint64_t>(n);
        file_->length -= static_cast<std::uint64_t>(n);
        burst += static_cast<std::size_t>(n);
        if (burst >= kSendfileBurst && file_->length > 0) {
          asio::post(stream_.get_executor(),
                     [self = this->shared_from_this()] { self->send_file_zero_copy(); });
          return;
        }
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        write_timer_.expires_after(server_->limits_.write_timeout);
        write_timer_.async_wait(
            [self = this->shared_from_this()](const boost::system::error_code& ec) {
              if (!ec)
                self->close();  // no progress within write_timeout
            });
        sock.async_wait(asio::socket_base::wait_write,
                        [self = this->shared_from_this()](const boost::system::error_code& ec) {
                          self->write_timer_.cancel();
                          if (ec) {
                            self->response_done(ec, false);
                            return;
                          }
                          self->send_file_zero_copy();
                        });
        return;
      }
      // n == 0 (file shrank under us) or a hard error: the response cannot complete.
      response_done(
          boost::system::error_code(n == 0 ? EIO : errno, boost::system::system_category()), false);
      return;
    }
    file_.reset();
    response_done({}, file_keep_alive_);
  }

  // TLS: read a chunk with pread and write it through the TLS stream.
  void send_file_chunk() {
    if (file_->length == 0) {
      file_.reset();
      std::vector<char>().swap(file_chunk_);
      response_done({}, file_keep_alive_);
      return;
    }
    const std::size_t want = std::min<std::uint64_t>(file_->length, file_chunk_.size());
    const ssize_t n =
        ::pread(file_->file->fd(), file_chunk_.data(), want, static_cast<off_t>(file_->offset));
    if (n <= 0) {
      response_done(
          boost::system::error_code(n == 0 ? EIO : errno, boost::system::system_category()), false);
      return;
    }
    beast::get_lowest_layer(stream_).expires_after(server_->limits_.write_timeout);
    asio::async_write(stream_, asio::buffer(file_chunk_.data(), static_cast<std::size_t>(n)),
                      [self = this->shared_from_this()](const boost::system::error_code& ec,
                                                        std::size_t written) {
                        if (ec) {
                          self->response_done(ec, false);
                          return;
                        }
                        self->file_->offset += written;
                        self->file_->length -= written;
                        self->send_file_chunk();
                      });
  }

  void response_done(const boost::system::error_code& ec, bool keep_alive) {
    busy_ = false;
    if (ec || !keep_alive || closing_) {
      close();
      return;
    }
    read_request();
  }

  void close() {
    beast::error_code ignored;
    read_timer_.cancel();
    write_timer_.cancel();
    // No TLS close_notify round trip: the peer may be gone, and a slow one must not hold us.
    beast::get_lowest_layer(stream_).socket().shutdown(asio::socket_base::shutdown_both, ignored);
    beast::get_lowest_layer(stream_).close();
  }

  std::shared_ptr<Server::Impl> server_;
  Stream stream_;
  asio::steady_timer read_timer_;
  asio::steady_timer write_timer_;
  Peer peer_;
  beast::flat_buffer buffer_;
  // Only while a request is read: a connection waiting for its reply holds no parser.
  std::unique_ptr<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<FileBody> file_;
  std::vector<char> file_chunk_;
  bool file_keep_alive_ = false;
  std::function<void()> on_hangup_;  // a handler waits to hear of a hang-up
  std::uint64_t request_seq_ = 0;    // which request a hang-up watch belongs to
  bool awaiting_reply_ = false;
  bool hung_up_ = false;
  bool busy_ = false;
  bool closing_ = false;
  bool keep_alive_ = true;
  bool head_ = false;
  bool read_timed_out_ = false;
};

template <class Stream>
void start_connection(const std::shared_ptr<Server::Impl>& server, Stream stream, Peer peer) {
  auto conn = std::make_shared<Connection<Stream>>(server, std::move(stream), std::move(peer));
  if (!server->add(conn.get(), conn)) {
    ++server->rejected_total_;
    return;  // over the connection limit or stopping: the socket closes with `conn`
  }
  conn->start();
}

// ---- Listeners ------------------------------------------------------------------------------

void Server::Impl::accept_tcp(Tcp::acceptor& acceptor, const std::shared_ptr<TlsSlot>& tls) {
  acceptor.async_accept(
      asio::make_strand(io_), [self = shared_from_this(), &acceptor, tls](
                                  const boost::system::error_code& ec, Tcp::socket socket) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open())
          return;
        if (!ec) {
          Peer peer;
          boost::system::error_code ignored;
          const auto remote = socket.remote_endpoint(ignored);
          peer.address = remote.address().to_string();
          peer.port = remote.port();
          socket.set_option(Tcp::no_delay(true), ignored);
          if (tls) {
            start_connection(self, TlsStream(TcpStream(std::move(socket)), *tls->current()),
                             std::move(peer));
          } else {
            start_connection(self, TcpStream(std::move(socket)), std::move(peer));
          }
        }
        self->accept_tcp(acceptor, tls);
      });
}

void Server::Impl::accept_unix(UnixProtocol::acceptor& acceptor,
                               const std::filesystem::path& path) {
  acceptor.async_accept(asio::make_strand(io_), [self = shared_from_this(), &acceptor, path](
                                                    const boost::system::error_code& ec,
                                                    UnixProtocol::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open())
      return;
    if (!ec) {
      Peer peer;
      peer.address = path.string();
      struct ucred cred {};
      socklen_t len = sizeof cred;
      if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        peer.credentials = Peer::Credentials{cred.pid, cred.uid, cred.gid};
      }
      start_connection(self, UnixStream(std::move(socket)), std::move(peer));
    }
    self->accept_unix(acceptor, path);
  });
}

namespace {

Result<std::shared_ptr<ssl::context>> make_tls_context(const TlsConfig& tls) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                       ssl::context::single_dh_use,
                   ec);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  // Parked long-polls keep their TLS state; let OpenSSL free idle read/write buffers.
  SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  ctx->use_certificate_chain(asio::buffer(tls.certificate_chain_pem), ec);
  if (ec)
    return server_error(ec, "TLS certificate chain");
  ctx->use_private_key(asio::buffer(tls.private_key_pem), ssl::context::pem, ec);
  if (ec)
    return server_error(ec, "TLS private key");
  if (!tls.client_ca_pem.empty()) {
    ctx->add_certificate_authority(asio::buffer(tls.client_ca_pem), ec);
    if (ec)
      return server_error(ec, "TLS client CA");
    ctx->set_verify_mode(ssl::verify_peer, ec);
    // Accept any certificate during the handshake and record whether it verified
    // (SSL_get_verify_result): the handler answers 401/403, which a client can report.
    ctx->set_verify_callback([](bool, ssl::verify_context&) { return true; }, ec);
  }
  return ctx;
}

}  // namespace

// ---- Server ---------------------------------------------------------------------------------

Server::Server(asio::io_context& io, Handler handler, Limits limits)
    : impl_(std::make_shared<Impl>(io, std::move(handler), limits)) {
  // sendfile(2) has no MSG_NOSIGNAL: a client that hangs up during a file body would raise
  // SIGPIPE and kill the whole process. EPIPE from the call is handled like any write error.
  static std::once_flag ignore_sigpipe;
  std::call_once(ignore_sigpipe, [] { (void)::signal(SIGPIPE, SIG_IGN); });
}

Server::~Server() {
  std::lock_guard lock(impl_->mu_);
  for (auto& a : impl_->tcp_acceptors_) {
    boost::system::error_code ignored;
    a->close(ignored);
  }
  for (auto& a : impl_->unix_acceptors_) {
    boost::system::error_code ignored;
    a->close(ignored);
  }
}

Result<std::uint16_t> Server::listen_tcp(std::string_view address, std::uint16_t port,
                                         std::optional<TlsConfig> tls) {
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address(std::string(address), ec);
  if (ec)
    return server_error(ec, "listen address '" + std::string(address) + "'");
  std::shared_ptr<Impl::TlsSlot> slot;
  if (tls) {
    slot = std::make_shared<Impl::TlsSlot>();
    LAB_TRY_ASSIGN(slot->ctx, make_tls_context(*tls));
  }
  auto acceptor = std::make_unique<Tcp::acceptor>(impl_->io_);
  const Tcp::endpoint ep(addr, port);
  const std::string where = std::string(address) + ":" + std::to_string(port);
  acceptor->open(ep.protocol(), ec);
  if (!ec)
    acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec)
    acceptor->bind(ep, ec);
  if (ec)
    return server_error(ec, "cannot listen on " + where);
  acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return server_error(ec, "cannot listen on " + where);
  const std::uint16_t bound = acceptor->local_endpoint().port();
  std::lock_guard lock(impl_->mu_);
  impl_->accept_tcp(*acceptor, slot);
  impl_->tcp_acceptors_.push_back(std::move(acceptor));
  if (slot)
    impl_->tls_slots_.push_back(std::move(slot));
  return bound;
}

Result<void> Server::reload_tls(const TlsConfig& tls) {
  std::lock_guard lock(impl_->mu_);
  for (const auto& slot : impl_->tls_slots_) {
    LAB_TRY_ASSIGN(auto ctx, make_tls_context(tls));
    const std::lock_guard slot_lock(slot->mu);
    slot->retired.push_back(std::move(slot->ctx));
    slot->ctx = std::move(ctx);
  }
  return {};
}

Result<void> Server::listen_unix(const std::filesystem::path& path, unsigned mode) {
  std::error_code fs_ec;
  std::filesystem::create_directories(path.parent_path(), fs_ec);
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Error(boost::system::errc::make_error_code(boost::system::errc::file_exists),
                   path.string() + " exists and is not a socket");
    }
    ::unlink(path.c_str());  // a stale socket from an earlier run
  }
  boost::system::error_code ec;
  auto acceptor = std::make_unique<UnixProtocol::acceptor>(impl_->io_);
  const UnixProtocol::endpoint ep(path.string());
  acceptor->open(ep.protocol(), ec);
  if (!ec)
    acceptor->bind(ep, ec);
  if (!ec)
    acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return server_error(ec, "cannot listen on " + path.string());
  ::chmod(path.c_str(), static_cast<mode_t>(mode));
  std::lock_guard lock(impl_->mu_);
  impl_->accept_unix(*acceptor, path);
  impl_->unix_acceptors_.push_back(std::move(acceptor));
  impl_->unix_paths_.push_back(path);
  return {};
}

void Server::stop(std::function<void()> stopped) {
  std::vector<std::shared_ptr<ConnectionBase>> live;
  bool done_now = false;
  {
    std::lock_guard lock(impl_->mu_);
    impl_->stopping_ = true;
    for (auto& a : impl_->tcp_acceptors_) {
      boost::system::error_code ignored;
      a->close(ignored);
    }
    for (auto& a : impl_->unix_acceptors_) {
      boost::system::error_code ignored;
      a->close(ignored);
    }
    for (const auto& p : impl_->unix_paths_)
      ::unlink(p.c_str());
    for (auto& [ptr, weak] : impl_->connections_) {
      if (auto c = weak.lock())
        live.push_back(std::move(c));
    }
    done_now = impl_->connections_.empty();
    if (!done_now)
      impl_->stopped_ = stopped;
  }
  for (auto& c : live)
    c->shutdown();
  if (done_now && stopped)
    asio::post(impl_->io_, stopped);
}

ServerStats Server::stats() const {
  ServerStats s;
  {
    std::lock_guard lock(impl_->mu_);
    s.connections_open = impl_->connections_.size();
  }
  s.connections_total = impl_->connections_total_;
  s.requests_total = impl_->requests_total_;
  s.rejected_total = impl_->rejected_total_;
  return s;
}

}  // namespace lab::shared::http
