#pragma once
// Server-side TLS over a beast::tcp_stream, with OpenSSL reading and writing memory BIOs.
//
// Why not asio::ssl::stream: it keeps two 17 KiB buffers per connection for the connection's
// whole life (zero-filled, so resident), and its BIO pair two more. A coordinator holding ten
// thousand parked long-polls would spend over 300 MiB on buffers of idle connections. Here
// ciphertext lives only while an operation runs (on the stack or in the operation), the BIOs are
// swapped for empty ones when drained, and OpenSSL frees its record buffers when idle
// (SSL_MODE_RELEASE_BUFFERS): an idle connection costs its SSL object and session.
//
// Operations run one at a time per stream (the server never reads while it writes). Only
// server.cpp includes this header: it pulls in Beast.
#include <boost/asio/async_result.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <array>
#include <memory>
#include <string>
#include <utility>

namespace lab::shared::http::detail {

class TlsStream {
 public:
  using next_layer_type = boost::beast::tcp_stream;  // NOLINT(readability-identifier-naming)
  // Names the Asio and Beast stream concepts require.
  using executor_type =  // NOLINT(readability-identifier-naming)
      boost::beast::tcp_stream::executor_type;

  TlsStream(boost::beast::tcp_stream next, boost::asio::ssl::context& ctx)
      : next_(std::move(next)), ssl_(SSL_new(ctx.native_handle())) {
    if (ssl_ == nullptr)
      return;  // every operation then fails with ssl_failed()
    SSL_set_bio(ssl_, new_bio(), new_bio());
    SSL_set_mode(ssl_, SSL_MODE_RELEASE_BUFFERS);
    SSL_set_accept_state(ssl_);
    boost::system::error_code ignored;
    next_.socket().non_blocking(true, ignored);
  }
  TlsStream(TlsStream&& other) noexcept
      : next_(std::move(other.next_)), ssl_(std::exchange(other.ssl_, nullptr)) {}
  TlsStream& operator=(TlsStream&&) = delete;
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;
  ~TlsStream() {
    if (ssl_ != nullptr)
      SSL_free(ssl_);
  }

  executor_type get_executor() noexcept { return next_.get_executor(); }
  next_layer_type& next_layer() noexcept { return next_; }
  [[nodiscard]] SSL* native_handle() const noexcept { return ssl_; }

  template <class Token>
  auto async_handshake(boost::asio::ssl::stream_base::handshake_type /*server only*/,
                       Token&& token) {
    return boost::asio::async_compose<Token, void(boost::system::error_code)>(
        Op<Kind::handshake, boost::asio::mutable_buffer>(*this, {}), token, next_);
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        Op<Kind::read, MutableBuffers>(*this, buffers), token, next_);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        Op<Kind::write, ConstBuffers>(*this, buffers), token, next_);
  }

 private:
  enum class Kind { handshake, read, write };
  // A TLS record is at most 16 KiB of plaintext plus overhead.
  static constexpr std::size_t kCipherChunk = std::size_t{17} * 1024;

  static BIO* new_bio() {
    BIO* b = BIO_new(BIO_s_mem());
    if (b != nullptr)
      BIO_set_mem_eof_return(b, -1);  // empty means "wait for more", not end of stream
    return b;
  }

  static boost::system::error_code ssl_failed() {
    return boost::asio::error::make_error_code(boost::asio::error::no_memory);
  }

  static boost::system::error_code error_from(int ssl_error) {
    if (ssl_error == SSL_ERROR_ZERO_RETURN)
      return boost::asio::error::eof;  // close_notify
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0 || ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
      return boost::asio::ssl::error::stream_truncated;
    return {static_cast<int>(e), boost::asio::error::get_ssl_category()};
  }

  // Memory BIOs keep the largest size they ever held: once drained, swap in empty ones.
  void trim() {
    if (ssl_ == nullptr)
      return;
    if (rbio_used_ && BIO_ctrl_pending(SSL_get_rbio(ssl_)) == 0) {
      if (BIO* b = new_bio())
        SSL_set0_rbio(ssl_, b);
      rbio_used_ = false;
    }
    if (wbio_used_ && BIO_ctrl_pending(SSL_get_wbio(ssl_)) == 0) {
      if (BIO* b = new_bio())
        SSL_set0_wbio(ssl_, b);
      wbio_used_ = false;
    }
  }

  template <Kind K, class Buffers>
  class Op {
   public:
    Op(TlsStream& s, const Buffers& buffers) : s_(&s), buffers_(buffers) {}

    template <class Self>
    void operator()(Self& self, boost::system::error_code ec = {}, std::size_t n = 0) {
      switch (state_) {
        case State::start:
          if (s_->ssl_ == nullptr) {
            result_ = ssl_failed();
            done_ = true;
          }
          break;
        case State::flushed:
          out_.clear();
          if (ec)
            return finish(self, ec, 0);
          break;
        case State::waited:
          if (ec)
            return finish(self, ec, 0);
          if (!pull(ec)) {
            if (ec)
              return finish(self, ec, 0);
            want_read_ = true;  // spurious wake-up
          }
          break;
        case State::read_cipher:
          if (ec)
            return finish(self, ec, 0);
          BIO_write(SSL_get_rbio(s_->ssl_), cipher_.get(), static_cast<int>(n));
          s_->rbio_used_ = true;
          break;
        case State::deliver:
          return finish(self, result_, bytes_);
      }
      step(self);
    }

   private:
    enum class State { start, flushed, waited, read_cipher, deliver };

    template <class Self>
    void step(Self& self) {
      namespace asio = boost::asio;
      for (;;) {
        if (!done_ && !want_read_)
          attempt();
        SSL* ssl = s_->ssl_;
        // Whatever OpenSSL produced goes out before the operation completes or waits.
        if (ssl != nullptr && BIO_ctrl_pending(SSL_get_wbio(ssl)) > 0) {
          BIO* w = SSL_get_wbio(ssl);
          out_.resize(BIO_ctrl_pending(w));
          BIO_read(w, out_.data(), static_cast<int>(out_.size()));
          s_->wbio_used_ = true;
          state_ = State::flushed;
          io_started_ = true;
          asio::async_write(s_->next_, asio::buffer(out_), std::move(self));
          return;
        }
        if (done_) {
          if (!io_started_) {
            // Never complete inside the initiating call.
            state_ = State::deliver;
            asio::post(s_->next_.get_executor(), std::move(self));
            return;
          }
          return finish(self, result_, bytes_);
        }
        if (want_read_) {
          want_read_ = false;
          io_started_ = true;
          if constexpr (K == Kind::read) {
            // Waiting for a request holds no buffer: most connections wait most of the time.
            // The server's read timer cancels this wait through the socket.
            state_ = State::waited;
            s_->next_.socket().async_wait(asio::socket_base::wait_read, std::move(self));
          } else {
            // Handshake: through the tcp_stream, so its expiry bounds a silent client.
            state_ = State::read_cipher;
            cipher_ = std::make_unique<char[]>(kCipherChunk);
            s_->next_.async_read_some(asio::buffer(cipher_.get(), kCipherChunk), std::move(self));
          }
          return;
        }
        // SSL_ERROR_WANT_WRITE after a flush: try again.
      }
    }

    void attempt() {
      SSL* ssl = s_->ssl_;
      ERR_clear_error();
      std::size_t n = 0;
      int r = 0;
      if constexpr (K == Kind::handshake) {
        r = SSL_do_handshake(ssl);
      } else if constexpr (K == Kind::read) {
        boost::asio::mutable_buffer b = first(buffers_);
        if (b.size() == 0) {
          done_ = true;
          return;
        }
        r = SSL_read_ex(ssl, b.data(), b.size(), &n);
      } else {
        if (plain_.empty()) {
          // One record for the whole sequence (headers and body), not one per buffer.
          plain_.resize(std::min(boost::asio::buffer_size(buffers_), std::size_t{16} * 1024));
          boost::asio::buffer_copy(boost::asio::buffer(plain_), buffers_);
        }
        if (plain_.empty()) {
          done_ = true;
          return;
        }
        r = SSL_write_ex(ssl, plain_.data(), plain_.size(), &n);
      }
      if (r == 1) {
        done_ = true;
        bytes_ = n;
        return;
      }
      const int err = SSL_get_error(ssl, r);
      if (err == SSL_ERROR_WANT_READ) {
        want_read_ = true;
      } else if (err != SSL_ERROR_WANT_WRITE) {
        done_ = true;
        result_ = error_from(err);
      }
    }

    // Reads what the socket has (without blocking) into the read BIO. False when nothing was
    // there (ec clear) or the socket failed (ec set).
    bool pull(boost::system::error_code& ec) {
      std::array<char, kCipherChunk> buf;  // NOLINT(cppcoreguidelines-pro-type-member-init)
      const std::size_t got = s_->next_.socket().read_some(boost::asio::buffer(buf), ec);
      if (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again) {
        ec.clear();
        return false;
      }
      if (ec)
        return false;
      BIO_write(SSL_get_rbio(s_->ssl_), buf.data(), static_cast<int>(got));
      s_->rbio_used_ = true;
      return true;
    }

    template <class Self>
    void finish(Self& self, boost::system::error_code ec, std::size_t n) {
      s_->trim();
      cipher_.reset();
      std::string().swap(out_);
      std::string().swap(plain_);
      if constexpr (K == Kind::handshake) {
        self.complete(ec);
      } else {
        self.complete(ec, ec ? 0 : n);
      }
    }

    static boost::asio::mutable_buffer first(const Buffers& buffers) {
      if constexpr (K == Kind::read) {
        for (auto it = boost::asio::buffer_sequence_begin(buffers);
             it != boost::asio::buffer_sequence_end(buffers); ++it) {
          boost::asio::mutable_buffer b(*it);
          if (b.size() > 0)
            return b;
        }
      }
      return {};
    }

    TlsStream* s_;
    Buffers buffers_;
    State state_ = State::start;
    bool done_ = false;
    bool want_read_ = false;
    bool io_started_ = false;
    boost::system::error_code result_;
    std::size_t bytes_ = 0;
    std::string out_;    // ciphertext being written
    std::string plain_;  // linearised plaintext of a write
    std::unique_ptr<char[]> cipher_;
  };

  boost::beast::tcp_stream next_;
  SSL* ssl_ = nullptr;
  bool rbio_used_ = false;
  bool wbio_used_ = false;
};

}  // namespace lab::shared::http::detail
