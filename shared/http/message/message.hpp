#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lab::shared::http {

/// HTTP header fields in arrival order; names compare case-insensitively.
class Headers {
 public:
  /// Replaces every field named `name` with one field.
  void set(std::string_view name, std::string value);
  void add(std::string name, std::string value);
  [[nodiscard]] std::optional<std::string_view> get(std::string_view name) const;
  [[nodiscard]] const std::vector<std::pair<std::string, std::string>>& all() const noexcept {
    return fields_;
  }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

bool iequals(std::string_view a, std::string_view b) noexcept;

/// Who is on the other end of a connection.
struct Peer {
  struct Credentials {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
  };
  std::string address;  // "10.0.0.7" (TCP) or the socket path (unix)
  std::uint16_t port = 0;
  /// What a handler needs of a TLS client certificate, read once at the handshake: a parked
  /// connection keeps no copy of the certificate and no request parses it again.
  struct ClientCertificate {
    std::string serial;  // lower-case hex, no leading zeros
    std::string common_name;
    std::chrono::system_clock::time_point not_after;
    bool verified = false;  // it chained to the listener's client CA at the handshake
  };
  std::optional<Credentials> credentials;        // unix sockets: SO_PEERCRED
  std::optional<ClientCertificate> client_cert;  // TLS: if the client sent a certificate
};

struct Request {
  std::string method;  // "GET"
  std::string target;  // as sent: "/v1/agent/bundle?since=7"
  std::string path;    // percent-decoded path: "/v1/agent/bundle"
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  Headers headers;
  std::string body;
  Peer peer;
  /// Set by shared::http::Server. A handler that holds its Reply for long (a long-poll) passes
  /// a function here to learn that the client hung up first: it runs at most once, on the
  /// connection's strand, never after the reply, and the connection is closed by then, so
  /// the handler can answer at once and let go of what it holds. Callable from any thread.
  std::function<void(std::function<void()>)> on_hangup;

  [[nodiscard]] std::optional<std::string_view> query_param(std::string_view name) const;
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const {
    return headers.get(name);
  }
};

/// An open file a response streams from; closed when the last response using it is gone.
class File {
 public:
  explicit File(int fd) noexcept : fd_(fd) {}
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File();
  [[nodiscard]] int fd() const noexcept { return fd_; }

 private:
  int fd_;
};

/// Part of a file sent as the body without copying it into memory (sendfile on plain TCP).
struct FileBody {
  std::shared_ptr<const File> file;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};

struct Response {
  unsigned status = 200;
  Headers headers;
  std::string body;
  std::optional<FileBody> file;  // when set, `body` is ignored and this range is sent
  bool close = false;            // close the connection after this response

  static Response json(unsigned status, std::string body);
  static Response text(unsigned status, std::string body);
  /// {"error": "<message>"} with the status; messages must not leak internal detail.
  static Response error(unsigned status, std::string_view message);
};

/// "Not Found" for 404; "Unknown" for codes without a standard reason.
std::string_view reason(unsigned status) noexcept;

/// Splits "a=1&b=x%20y" into decoded pairs; malformed escapes are kept literally.
std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query);
/// Decodes %XX escapes (and '+' as space when `plus_is_space`); false on a bad escape.
bool percent_decode(std::string_view in, std::string& out, bool plus_is_space);

}  // namespace lab::shared::http
