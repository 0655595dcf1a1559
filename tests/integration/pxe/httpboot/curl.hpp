#pragma once

// curl as the HTTP client of the HTTP boot tests: status, headers and body of one request.
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <string>
#include <vector>

namespace lab::tests::httpboot {

struct CurlResult {
  int status = 0;  // 0: curl failed (see `error`)
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string error;

  /// The last value of a header (case-insensitive name), empty when absent.
  [[nodiscard]] std::string header(std::string_view name) const {
    std::string out;
    for (const auto& [k, v] : headers) {
      if (k.size() == name.size() &&
          std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) ==
                   std::tolower(static_cast<unsigned char>(b));
          }))
        out = v;
    }
    return out;
  }
};

/// Runs `curl <args> <url>` and collects the answer; bodies go through a file, so binary
/// content and large downloads (with -o /dev/null in `args`) both work.
inline CurlResult curl(const std::string& url, std::vector<std::string> args = {}) {
  const TempDir dir("lab-curl");
  const auto head = dir / "headers";
  const auto body = dir / "body";
  std::vector<std::string> argv = {"curl", "-sS", "--max-time", "60", "-D", head.string()};
  bool has_output = false;
  for (const auto& a : args)
    has_output = has_output || a == "-o";
  if (!has_output) {
    argv.emplace_back("-o");
    argv.push_back(body.string());
  }
  argv.insert(argv.end(), args.begin(), args.end());
  argv.emplace_back("-w");
  argv.emplace_back("\n%{http_code}");
  argv.push_back(url);
  auto r = run(argv, std::chrono::seconds(90));
  CurlResult out;
  const auto nl = r.output.rfind('\n');
  if (r.exit_code != 0 || nl == std::string::npos) {
    out.error = r.output;
    return out;
  }
  out.status = std::atoi(r.output.c_str() + nl + 1);
  out.body = read_file(body);
  const std::string raw = read_file(head);
  std::size_t pos = 0;
  while (pos < raw.size()) {
    auto end = raw.find("\r\n", pos);
    if (end == std::string::npos)
      end = raw.size();
    const std::string line = raw.substr(pos, end - pos);
    pos = end + 2;
    const auto colon = line.find(':');
    if (line.rfind("HTTP/", 0) == 0) {
      out.headers.clear();  // a 100 Continue or a redirect before the final answer
      continue;
    }
    if (colon == std::string::npos)
      continue;
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ')
      value.erase(0, 1);
    out.headers.emplace_back(line.substr(0, colon), value);
  }
  return out;
}

/// Sends raw bytes to 127.0.0.1:port and returns what comes back until the server closes or
/// 5 s pass: for requests curl refuses to send.
inline std::string raw_exchange(std::uint16_t port, const std::string& bytes) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return {};
  timeval tv{.tv_sec = 5, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
      ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size())) {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0)
        break;
      out.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return out;
}

}  // namespace lab::tests::httpboot
