#include "agent/checks/runner.hpp"

#include "agent/checks/kinds.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <exception>
#include <optional>

namespace lab::agent::checks {
namespace detail {

std::string timeout_text(std::chrono::milliseconds timeout) {
  if (timeout.count() % 1000 == 0)
    return std::to_string(timeout.count() / 1000) + "s";
  return std::to_string(timeout.count()) + "ms";
}

std::string errno_text(int error) {
  char buf[256] = {};
  // The GNU strerror_r: it returns the text, which need not be in `buf`.
  return one_line(strerror_r(error, buf, sizeof buf));
}

std::string one_line(std::string_view text) {
  std::string out(text);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r' || out.back() == ' '))
    out.pop_back();
  std::replace_if(
      out.begin(), out.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  // Only a capital followed by a lower-case letter: "Connection refused" reads well lowered,
  // "SSL certificate problem" does not.
  if (out.size() >= 2 && std::isupper(static_cast<unsigned char>(out[0])) != 0 &&
      std::islower(static_cast<unsigned char>(out[1])) != 0) {
    out[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(out[0])));
  }
  return out;
}

int poll_timeout(Clock::time_point deadline) {
  const auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero())
    return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::min<std::int64_t>(ms, 24LL * 3600 * 1000));
}

}  // namespace detail

namespace {

// Far above any sensible check, and keeps start + timeout from overflowing the clock.
constexpr std::chrono::milliseconds kMaxTimeout = std::chrono::hours(24);

bool has_nul(const std::string& s) {
  return s.find('\0') != std::string::npos;
}

// Spec errors an operator made in the bundle; nullopt when the spec can run.
std::optional<std::string> invalid(const Spec& spec) {
  if (spec.timeout <= std::chrono::milliseconds::zero())
    return "the timeout must be positive";
  if (spec.timeout > kMaxTimeout)
    return "the timeout must be at most " + detail::timeout_text(kMaxTimeout);
  switch (spec.kind) {
    case Kind::command:
      if (spec.argv.empty() || spec.argv.front().empty())
        return "no command to run";
      if (spec.shell && spec.argv.size() != 1)
        return "a shell check takes its command as one string, not " +
               std::to_string(spec.argv.size());
      // C strings end at the first NUL: the program would get something else than written.
      if (std::any_of(spec.argv.begin(), spec.argv.end(), has_nul) || has_nul(spec.user))
        return "the command contains a NUL byte";
      return std::nullopt;
    case Kind::http: {
      std::string scheme = spec.url.substr(0, spec.url.find(':'));
      std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if ((scheme != "http" && scheme != "https") || spec.url.find("://") != scheme.size())
        return "the URL must start with http:// or https://";
      if (has_nul(spec.url))
        return "the URL contains a NUL byte";
      return std::nullopt;
    }
    case Kind::tcp:
      if (spec.host.empty() || has_nul(spec.host))
        return "no host to connect to";
      if (spec.port == 0)
        return "no port to connect to";
      return std::nullopt;
  }
  return "unknown kind of check";
}

Outcome dispatch(const Spec& spec, detail::Clock::time_point start) {
  if (auto error = invalid(spec)) {
    Outcome out;
    out.reason = std::move(*error);
    return out;
  }
  const auto deadline = start + spec.timeout;
  switch (spec.kind) {
    case Kind::command:
      return detail::run_command(spec, deadline);
    case Kind::http:
      return detail::run_http(spec, deadline);
    case Kind::tcp:
      return detail::run_tcp(spec, deadline);
  }
  return {};
}

}  // namespace

Outcome run(const Spec& spec) noexcept {
  const auto start = detail::Clock::now();
  Outcome out;
  try {
    out = dispatch(spec, start);
  } catch (const std::exception& e) {
    out = Outcome{};
    out.reason = std::string("internal error: ") + e.what();
  } catch (...) {
    out = Outcome{};
    out.reason = "internal error";
  }
  out.duration =
      std::chrono::duration_cast<std::chrono::milliseconds>(detail::Clock::now() - start);
  return out;
}

}  // namespace lab::agent::checks
