#include "shared/http/beast_client/client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <charconv>
#include <limits>
#include <optional>

namespace lab::shared::http {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace bhttp = boost::beast::http;
using Tcp = asio::ip::tcp;
using Local = asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

struct Url {
  bool tls = false;
  std::string host;         // without brackets
  std::string port;         // always set
  std::string host_header;  // as the Host header wants it
  std::string prefix;       // path of the base URL without its trailing '/'
  bool ip = false;          // host is a literal address (no SNI, IP SAN check)
};

Result<Url> parse_url(std::string_view s) {
  Url u;
  const auto bad = [&](std::string_view why) {
    return Error(BeastClientError::bad_url, std::string(s) + ": " + std::string(why));
  };
  if (s.starts_with("https://")) {
    u.tls = true;
    s.remove_prefix(8);
  } else if (s.starts_with("http://")) {
    s.remove_prefix(7);
  } else {
    return bad("expected http:// or https://");
  }
  const auto slash = s.find('/');
  std::string_view authority = s.substr(0, slash);
  if (slash != std::string_view::npos) {
    u.prefix = std::string(s.substr(slash));
    while (!u.prefix.empty() && u.prefix.back() == '/')
      u.prefix.pop_back();
  }
  std::string_view port;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos)
      return bad("unclosed '[' in the host");
    u.host = std::string(authority.substr(1, close - 1));
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':')
        return bad("junk after the IPv6 address");
      port = rest.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos)
      port = authority.substr(colon + 1);
  }
  if (u.host.empty())
    return bad("no host");
  if (!port.empty()) {
    unsigned n = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
    if (ec != std::errc() || end != port.data() + port.size() || n == 0 || n > 65535)
      return bad("bad port");
  }
  u.port = port.empty() ? (u.tls ? "443" : "80") : std::string(port);
  error_code ec;
  (void)asio::ip::make_address(u.host, ec);
  u.ip = !ec;
  u.host_header = std::string(authority);
  return u;
}

struct X509Free {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

std::string to_pem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr)
    return {};
  std::string out;
  if (PEM_write_bio_X509(bio, cert) == 1) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);  // NOLINT(google-runtime-int)
    if (n > 0)
      out.assign(data, static_cast<std::size_t>(n));
  }
  BIO_free(bio);
  return out;
}

X509Ptr from_pem(std::string_view pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr)
    return nullptr;
  X509Ptr cert(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  return cert;
}

// Host name or IP address checks of `param` for `url`, as the TLS layer does them; a
// `server_name` replaces the URL's host (a name, checked against the CN when the certificate
// has no DNS names).
void expect_host(X509_VERIFY_PARAM* param, const Url& url, const std::string& server_name) {
  if (!server_name.empty()) {
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    X509_VERIFY_PARAM_set1_host(param, server_name.c_str(), server_name.size());
  } else if (url.ip) {
    X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str());
  } else {
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    X509_VERIFY_PARAM_set1_host(param, url.host.c_str(), url.host.size());
  }
}

}  // namespace

const boost::system::error_category& beast_client_category() noexcept {
  static const ErrorCategory<BeastClientError> kCategory(
      "lab.http.beast_client", [](BeastClientError e) noexcept -> const char* {
        switch (e) {
          case BeastClientError::bad_url:
            return "bad URL";
          case BeastClientError::tls_setup:
            return "TLS credentials do not load";
          case BeastClientError::resolve_failed:
            return "cannot resolve host";
          case BeastClientError::connect_failed:
            return "cannot connect";
          case BeastClientError::timeout:
            return "timed out";
          case BeastClientError::tls_handshake:
            return "TLS handshake failed";
          case BeastClientError::tls_verify:
            return "server certificate not trusted";
          case BeastClientError::write_failed:
            return "sending the request failed";
          case BeastClientError::read_failed:
            return "connection closed before the response was complete";
          case BeastClientError::protocol:
            return "HTTP protocol error";
          case BeastClientError::too_large:
            return "response too large";
        }
        return "HTTP client error";
      });
  return kCategory;
}

struct BeastClient::Impl {
  BeastClientOptions options;
  std::optional<Url> url;
  std::string trusted_ca;
  asio::io_context io{1};
  std::unique_ptr<ssl::context> ctx;
  bool ctx_verifies = false;  // ctx was built with a CA (not for choose_ca)
  std::optional<Tcp::socket> tcp;
  std::optional<ssl::stream<Tcp::socket>> tls;
  std::optional<Local::socket> local;
  boost::beast::flat_buffer buffer;

  explicit Impl(BeastClientOptions o) : options(std::move(o)), trusted_ca(options.ca_pem) {}

  [[nodiscard]] bool connected() const noexcept {
    return tls.has_value() || tcp.has_value() || local.has_value();
  }

  [[nodiscard]] std::string where() const {
    return options.unix_socket.empty() ? options.base_url : options.unix_socket;
  }

  Error fail(BeastClientError e, std::string_view what) const {
    std::string detail = where();
    detail += ": ";
    detail += what;
    return {e, std::move(detail)};
  }

  // Closes the sockets so that every pending operation completes (with operation_aborted).
  void abort_sockets() noexcept {
    error_code ignored;
    if (tls)
      tls->lowest_layer().close(ignored);
    if (tcp)
      tcp->close(ignored);
    if (local)
      local->close(ignored);
  }

  void drop() noexcept {
    abort_sockets();
    tls.reset();
    tcp.reset();
    local.reset();
    buffer.clear();
    buffer.shrink_to_fit();
  }

  // Runs the queued operations until `done` or `deadline`. On the deadline the connection is
  // closed, the aborted handlers are run, and false is returned.
  bool wait(const bool& done, Clock::time_point deadline, asio::ip::tcp::resolver* resolver) {
    io.restart();
    while (!done) {
      if (io.run_one_until(deadline) == 0)
        break;
    }
    if (done)
      return true;
    if (resolver != nullptr)
      resolver->cancel();
    abort_sockets();
    io.restart();
    io.run();
    return false;
  }

  Result<void> make_context() {
    const bool verifies = !trusted_ca.empty() || !options.choose_ca;
    if (ctx && ctx_verifies == verifies)
      return {};
    ctx.reset();
    auto c = std::make_unique<ssl::context>(ssl::context::tls_client);
    SSL_CTX* h = c->native_handle();
    SSL_CTX_set_min_proto_version(h, TLS1_2_VERSION);
    // Record buffers are freed while the connection idles in a long-poll. The client
    // certificate goes alone, not with a chain built from the trusted CA: the server holds
    // the CA already, and every certificate sent stays parsed in its session while the
    // connection lives.
    SSL_CTX_set_mode(h, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
    error_code ec;
    if (!trusted_ca.empty()) {
      c->add_certificate_authority(asio::buffer(trusted_ca), ec);
      if (ec)
        return fail(BeastClientError::tls_setup, "the CA certificate does not load");
    } else if (verifies) {
      c->set_default_verify_paths(ec);  // only without a CA of our own
      if (ec)
        return fail(BeastClientError::tls_setup, "the system CA store does not load");
    }
    c->set_verify_mode(verifies ? ssl::verify_peer : ssl::verify_none, ec);
    if (!options.client_cert_pem.empty()) {
      c->use_certificate_chain(asio::buffer(options.client_cert_pem), ec);
      if (ec)
        return fail(BeastClientError::tls_setup, "the client certificate does not load");
      c->use_private_key(asio::buffer(options.client_key_pem), ssl::context::pem, ec);
      if (ec || SSL_CTX_check_private_key(h) != 1) {
        ERR_clear_error();
        return fail(BeastClientError::tls_setup,
                    "the client key does not load or does not match the certificate");
      }
    }
    ctx = std::move(c);
    ctx_verifies = verifies;
    return {};
  }

  // How an async connect ended (unix socket or TCP): a timeout or an error leaves nothing open.
  Result<void> connected(bool finished, const error_code& ec) {
    if (!finished) {
      drop();
      return fail(BeastClientError::timeout, "connecting timed out");
    }
    if (ec) {
      drop();
      return fail(BeastClientError::connect_failed, "connect: " + ec.message());
    }
    return {};
  }

  Result<void> connect(Clock::time_point request_deadline) {
    const Clock::time_point deadline =
        std::min(request_deadline, Clock::now() + options.connect_timeout);
    buffer.clear();
    if (!options.unix_socket.empty()) {
      local.emplace(io);
      bool done = false;
      error_code ec;
      local->async_connect(Local::endpoint(options.unix_socket), [&](error_code e) {
        ec = e;
        done = true;
      });
      return connected(wait(done, deadline, nullptr), ec);
    }

    const Url& u = *url;
    Tcp::resolver::results_type endpoints;
    if (u.ip) {
      error_code ignored;
      std::uint16_t port = 0;
      std::from_chars(u.port.data(), u.port.data() + u.port.size(), port);
      endpoints = Tcp::resolver::results_type::create(
          Tcp::endpoint(asio::ip::make_address(u.host, ignored), port), u.host, u.port);
    } else {
      Tcp::resolver resolver(io);
      bool done = false;
      error_code ec;
      resolver.async_resolve(u.host, u.port,
                             [&](error_code e, const Tcp::resolver::results_type& r) {
                               ec = e;
                               endpoints = r;
                               done = true;
                             });
      if (!wait(done, deadline, &resolver))
        return fail(BeastClientError::timeout, "resolving " + u.host + " timed out");
      if (ec)
        return fail(BeastClientError::resolve_failed, "resolve " + u.host + ": " + ec.message());
    }

    if (u.tls) {
      LAB_TRY(make_context());
      tls.emplace(io, *ctx);
    } else {
      tcp.emplace(io);
    }
    Tcp::socket& socket = tls ? tls->next_layer() : *tcp;
    {
      bool done = false;
      error_code ec;
      asio::async_connect(socket, endpoints, [&](error_code e, const Tcp::endpoint&) {
        ec = e;
        done = true;
      });
      LAB_TRY(connected(wait(done, deadline, nullptr), ec));
      socket.set_option(Tcp::no_delay(true), ec);
    }
    if (!u.tls)
      return {};

    SSL* ssl_handle = tls->native_handle();
    if (!u.ip)
      SSL_ctrl(ssl_handle, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(u.host.c_str()));  // NOLINT: SSL_set_tlsext_host_name, uncast
    expect_host(SSL_get0_param(ssl_handle), u, options.server_name);
    bool done = false;
    error_code ec;
    tls->async_handshake(ssl::stream_base::client, [&](error_code e) {
      ec = e;
      done = true;
    });
    if (!wait(done, deadline, nullptr)) {
      drop();
      return fail(BeastClientError::timeout, "TLS handshake timed out");
    }
    if (ec) {
      const long verify = SSL_get_verify_result(ssl_handle);  // NOLINT(google-runtime-int)
      ERR_clear_error();
      drop();
      if (ctx_verifies && verify != X509_V_OK) {
        return fail(BeastClientError::tls_verify,
                    std::string("server certificate: ") + X509_verify_cert_error_string(verify));
      }
      return fail(BeastClientError::tls_handshake, "TLS handshake: " + ec.message());
    }
    if (!ctx_verifies) {
      if (auto chosen = verify_by_choice(ssl_handle, u); !chosen) {
        drop();
        return chosen.error();
      }
    }
    return {};
  }

  // choose_ca: the chain as presented, the caller's pick, then the checks the TLS layer would
  // have made against that CA. Nothing has been sent yet.
  Result<void> verify_by_choice(SSL* ssl_handle, const Url& u) {
    STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl_handle);  // leaf first, on the client
    std::vector<std::string> pems;
    for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i)
      pems.push_back(to_pem(sk_X509_value(chain, i)));
    LAB_TRY_ASSIGN(std::string ca_pem, options.choose_ca(pems));
    X509Ptr ca = from_pem(ca_pem);
    if (!ca || chain == nullptr || sk_X509_num(chain) == 0) {
      ERR_clear_error();
      return fail(BeastClientError::tls_verify, "the chosen CA does not parse");
    }
    X509_STORE* store = X509_STORE_new();
    X509_STORE_CTX* check = X509_STORE_CTX_new();
    int ok = 0;
    std::string why = "out of memory";
    if (store != nullptr && check != nullptr && X509_STORE_add_cert(store, ca.get()) == 1 &&
        X509_STORE_CTX_init(check, store, sk_X509_value(chain, 0), chain) == 1) {
      X509_STORE_CTX_set_default(check, "ssl_server");
      expect_host(X509_STORE_CTX_get0_param(check), u, options.server_name);
      ok = X509_verify_cert(check);
      if (ok != 1)
        why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(check));
    }
    X509_STORE_CTX_free(check);
    X509_STORE_free(store);
    ERR_clear_error();
    if (ok != 1)
      return fail(BeastClientError::tls_verify, "server certificate: " + why);
    trusted_ca = std::move(ca_pem);
    return {};
  }

  template <class F>
  decltype(auto) with_stream(F&& f) {
    if (tls)
      return f(*tls);
    if (tcp)
      return f(*tcp);
    return f(*local);
  }

  struct Attempt {
    Result<BeastResponse> result;
    bool retry = false;  // the kept-alive connection was dead before the server saw anything
  };

  Attempt exchange(bhttp::request<bhttp::string_body>& req, bool reused,
                   Clock::time_point deadline) {
    {
      bool done = false;
      error_code ec;
      with_stream([&](auto& s) {
        bhttp::async_write(s, req, [&](error_code e, std::size_t) {
          ec = e;
          done = true;
        });
      });
      if (!wait(done, deadline, nullptr)) {
        drop();
        return {fail(BeastClientError::timeout, "sending the request timed out")};
      }
      if (ec) {
        drop();
        return {fail(BeastClientError::write_failed, "send: " + ec.message()), reused};
      }
    }
    bhttp::response_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(options.max_header, std::numeric_limits<std::uint32_t>::max())));
    parser.body_limit(options.max_body);
    if (req.method() == bhttp::verb::head)
      parser.skip(true);
    bool done = false;
    error_code ec;
    with_stream([&](auto& s) {
      bhttp::async_read(s, buffer, parser, [&](error_code e, std::size_t) {
        ec = e;
        done = true;
      });
    });
    if (!wait(done, deadline, nullptr)) {
      drop();
      return {fail(BeastClientError::timeout, "no complete response before the deadline")};
    }
    if (ec) {
      const bool nothing = !parser.got_some();
      drop();
      if (ec == bhttp::error::body_limit) {
        return {fail(BeastClientError::too_large,
                     "response body larger than " + std::to_string(options.max_body) + " bytes")};
      }
      if (ec == bhttp::error::header_limit)
        return {fail(BeastClientError::too_large, "response headers too large")};
      if (ec.category() == error_code(bhttp::error::end_of_stream).category() &&
          ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
        return {fail(BeastClientError::protocol, "bad HTTP response: " + ec.message())};
      }
      return {fail(BeastClientError::read_failed, "receive: " + ec.message()), reused && nothing};
    }
    auto& res = parser.get();
    BeastResponse out;
    out.status = res.result_int();
    for (const auto& field : res)
      out.headers.add(std::string(field.name_string()), std::string(field.value()));
    const bool keep = res.keep_alive();
    out.body = std::move(res.body());
    if (!keep)
      drop();
    else if (buffer.size() == 0)
      buffer.shrink_to_fit();  // a large bundle must not leave its read buffer behind
    return {std::move(out)};
  }
};

BeastClient::BeastClient(BeastClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
BeastClient::BeastClient(BeastClient&&) noexcept = default;
BeastClient& BeastClient::operator=(BeastClient&&) noexcept = default;
BeastClient::~BeastClient() = default;

const std::string& BeastClient::trusted_ca_pem() const noexcept {
  return impl_->trusted_ca;
}

void BeastClient::close() noexcept {
  impl_->drop();
}

Result<BeastResponse> BeastClient::request(std::string_view method, std::string_view path,
                                           std::string_view body, std::string_view content_type,
                                           const Headers& extra) {
  Impl& m = *impl_;
  const Clock::time_point deadline = Clock::now() + m.options.timeout;
  if (!m.url) {
    LAB_TRY_ASSIGN(Url u, parse_url(m.options.base_url));
    m.url = std::move(u);
  }
  bhttp::request<bhttp::string_body> req;
  const bhttp::verb verb = bhttp::string_to_verb(method);
  if (verb == bhttp::verb::unknown)
    req.method_string(method);
  else
    req.method(verb);
  req.target(m.url->prefix + std::string(path));
  req.version(11);
  req.set(bhttp::field::host, m.url->host_header);
  if (!content_type.empty())
    req.set(bhttp::field::content_type, content_type);
  if (!m.options.bearer_token.empty())
    req.set(bhttp::field::authorization, "Bearer " + m.options.bearer_token);
  for (const auto& [k, v] : extra.all())
    req.insert(k, v);
  req.body() = std::string(body);
  if (verb != bhttp::verb::get && verb != bhttp::verb::head)
    req.prepare_payload();

  for (int attempt = 0;; ++attempt) {
    const bool reused = m.connected();
    if (!reused)
      LAB_TRY(m.connect(deadline));
    auto [result, retry] = m.exchange(req, reused, deadline);
    if (result || !retry || attempt > 0)
      return std::move(result);
  }
}

}  // namespace lab::shared::http
