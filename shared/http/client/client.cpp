#include "shared/http/client/client.hpp"

#include <curl/curl.h>

#include <cstring>
#include <mutex>

namespace lab::shared::http {
namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Sink {
  std::string* body;
  Headers* headers;
  std::size_t max_body;
  bool overflow = false;
};

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const std::size_t bytes = size * n;
  if (sink->body->size() + bytes > sink->max_body) {
    sink->overflow = true;
    return 0;  // aborts the transfer
  }
  sink->body->append(data, bytes);
  return bytes;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    *sink->headers = Headers();  // a new response (after 100 Continue or a redirect)
    return size * n;
  }
  const auto colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() &&
           (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
      value.remove_suffix(1);
    }
    sink->headers->add(std::string(line.substr(0, colon)), std::string(value));
  }
  return size * n;
}

Error curl_error(CURLcode code, const char* errbuf, std::string_view url) {
  ClientError e = ClientError::protocol;
  switch (code) {
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      e = ClientError::bad_url;
      break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      e = ClientError::resolve_failed;
      break;
    case CURLE_COULDNT_CONNECT:
      e = ClientError::connect_failed;
      break;
    case CURLE_OPERATION_TIMEDOUT:
      e = ClientError::timeout;
      break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_INVALIDCERTSTATUS:
      e = ClientError::tls_failed;
      break;
    default:
      break;
  }
  std::string detail(url);
  detail += ": ";
  detail += (errbuf != nullptr && errbuf[0] != '\0') ? errbuf : curl_easy_strerror(code);
  return {e, std::move(detail)};
}

}  // namespace

const boost::system::error_category& client_category() noexcept {
  static const ErrorCategory<ClientError> kCategory("lab.http.client",
                                                    [](ClientError e) noexcept -> const char* {
                                                      switch (e) {
                                                        case ClientError::bad_url:
                                                          return "bad URL";
                                                        case ClientError::resolve_failed:
                                                          return "cannot resolve host";
                                                        case ClientError::connect_failed:
                                                          return "cannot connect";
                                                        case ClientError::timeout:
                                                          return "timed out";
                                                        case ClientError::tls_failed:
                                                          return "TLS handshake failed";
                                                        case ClientError::protocol:
                                                          return "HTTP protocol error";
                                                        case ClientError::too_large:
                                                          return "response too large";
                                                      }
                                                      return "HTTP client error";
                                                    });
  return kCategory;
}

struct Client::Curl {
  CURL* handle = nullptr;
  ~Curl() {
    if (handle != nullptr)
      curl_easy_cleanup(handle);
  }
};

Client::Client(ClientOptions options)
    : options_(std::move(options)), curl_(std::make_unique<Curl>()) {
  global_init();
}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

Result<ClientResponse> Client::request(std::string_view method, std::string_view path,
                                       std::string_view body, std::string_view content_type,
                                       const Headers& extra) {
  if (curl_->handle == nullptr)
    curl_->handle = curl_easy_init();
  CURL* h = curl_->handle;
  if (h == nullptr)
    return Error(ClientError::protocol, "curl_easy_init failed");
  curl_easy_reset(h);  // keeps the connection cache: the next request reuses the connection

  const std::string url = options_.base_url + std::string(path);
  const std::string verb(method);
  ClientResponse out;
  Sink sink{&out.body, &out.headers, options_.max_body};
  char errbuf[CURL_ERROR_SIZE] = {};

  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count()));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &sink);
  if (!options_.unix_socket.empty()) {
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, options_.unix_socket.c_str());
  }

  // TLS material from memory: keys never have to exist as files.
  curl_blob ca{const_cast<char*>(options_.ca_pem.data()), options_.ca_pem.size(),
               CURL_BLOB_NOCOPY};  // NOLINT
  curl_blob cert{const_cast<char*>(options_.client_cert_pem.data()),
                 options_.client_cert_pem.size(), CURL_BLOB_NOCOPY};  // NOLINT
  curl_blob key{const_cast<char*>(options_.client_key_pem.data()), options_.client_key_pem.size(),
                CURL_BLOB_NOCOPY};  // NOLINT
  if (!options_.ca_pem.empty())
    curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca);
  if (!options_.client_cert_pem.empty()) {
    curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cert);
    curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &key);
  }
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, options_.verify_peer ? 1L : 0L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, options_.verify_peer ? 2L : 0L);
  curl_easy_setopt(h, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
  if (!options_.verify_peer)
    curl_easy_setopt(h, CURLOPT_CERTINFO, 1L);

  struct curl_slist* list = nullptr;
  auto add_header = [&](const std::string& line) { list = curl_slist_append(list, line.c_str()); };
  if (!content_type.empty())
    add_header("Content-Type: " + std::string(content_type));
  if (!options_.bearer_token.empty())
    add_header("Authorization: Bearer " + options_.bearer_token);
  add_header("Expect:");  // no 100-continue round trip for small JSON bodies
  for (const auto& [k, v] : extra.all()) {
    std::string line = k;
    line += ": ";
    line += v;
    add_header(line);
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);

  if (verb == "GET") {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else if (verb == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, verb.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }

  const CURLcode rc = curl_easy_perform(h);
  curl_slist_free_all(list);
  if (sink.overflow) {
    return Error(ClientError::too_large,
                 url + ": response larger than " + std::to_string(options_.max_body) + " bytes");
  }
  if (rc != CURLE_OK)
    return curl_error(rc, errbuf, url);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out.status);
  if (!options_.verify_peer) {
    struct curl_certinfo* info = nullptr;
    if (curl_easy_getinfo(h, CURLINFO_CERTINFO, &info) == CURLE_OK && info != nullptr) {
      for (int i = 0; i < info->num_of_certs; ++i) {
        for (auto* s = info->certinfo[i]; s != nullptr; s = s->next) {
          std::string_view entry(s->data);
          if (entry.starts_with("Cert:"))
            out.peer_chain_pem.emplace_back(entry.substr(5));
        }
      }
    }
  }
  return out;
}

Result<std::vector<std::string>> Client::peer_chain(std::string_view path) {
  const bool saved = options_.verify_peer;
  options_.verify_peer = false;
  auto r = request("GET", path);
  options_.verify_peer = saved;
  // The unverified connection must not be reused for trusted requests.
  curl_.reset(new Curl());
  if (!r)
    return r.error();
  return std::move(r->peer_chain_pem);
}

}  // namespace lab::shared::http
