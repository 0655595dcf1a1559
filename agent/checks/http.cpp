// HTTP checks: one GET with libcurl, a fresh easy handle per run (no connection or cookie is
// carried from one check to the next). libcurl is opened with dlopen on the node's first HTTP
// check: linked, its dependency chain (GnuTLS, p11-kit, Kerberos, LDAP: about 4.8 MiB
// resident) would be mapped in every labd from the start, whether it runs HTTP checks or not.
#include "agent/checks/kinds.hpp"

#include <curl/curl.h>

#include <dlfcn.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>

namespace lab::agent::checks::detail {
namespace {

// Of the body, only this much is kept for the expect_body match: a check cannot make labd
// hold more, and a health page that needs more is not a health page.
constexpr std::size_t kMaxBody = std::size_t{64} * 1024;
constexpr long kMaxRedirects = 5;
// The only schemes, for the URL and for every redirect: never file://, ftp://, gopher:// or
// whatever else libcurl was built with.
constexpr const char* kProtocols = "http,https";

// The libcurl entry points this file calls, typed from curl.h; filled once, kept for the life of
// the process (a node that runs an HTTP check runs it again).
struct CurlApi {
  decltype(&::curl_global_init) global_init = nullptr;
  decltype(&::curl_easy_init) easy_init = nullptr;
  decltype(&::curl_easy_setopt) easy_setopt = nullptr;
  decltype(&::curl_easy_perform) easy_perform = nullptr;
  decltype(&::curl_easy_getinfo) easy_getinfo = nullptr;
  decltype(&::curl_easy_strerror) easy_strerror = nullptr;
  decltype(&::curl_easy_cleanup) easy_cleanup = nullptr;
};

// Opens libcurl (the soname of Debian's libcurl4 packages) and runs curl_global_init, which is
// not thread-safe and must run once before any handle exists. Null when either fails; `why`
// then says which.
const CurlApi* curl_api(std::string& why) {
  static std::once_flag once;
  static CurlApi api;
  static const CurlApi* loaded = nullptr;
  static std::string failure;
  std::call_once(once, [] {
    void* lib = ::dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* e = ::dlerror();  // NOLINT(concurrency-mt-unsafe): under call_once
      failure = std::string("cannot load libcurl: ") + (e != nullptr ? e : "dlopen failed");
      return;
    }
    bool ok = true;
    auto sym = [&](auto& fn, const char* name) {
      // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): dlsym's contract
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(lib, name));
      ok = ok && fn != nullptr;
    };
    sym(api.global_init, "curl_global_init");
    sym(api.easy_init, "curl_easy_init");
    sym(api.easy_setopt, "curl_easy_setopt");
    sym(api.easy_perform, "curl_easy_perform");
    sym(api.easy_getinfo, "curl_easy_getinfo");
    sym(api.easy_strerror, "curl_easy_strerror");
    sym(api.easy_cleanup, "curl_easy_cleanup");
    if (!ok) {
      failure = "libcurl.so.4 lacks a function labd calls";
      return;
    }
    if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      failure = "libcurl: global initialisation failed";
      return;
    }
    loaded = &api;  // never dlclosed
  });
  why = failure;
  return loaded;
}

struct Body {
  std::string data;
  bool over = false;  // more than kMaxBody arrived; the transfer was aborted
};

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* body = static_cast<Body*>(user);
  const std::size_t bytes = size * count;
  const std::size_t room = kMaxBody - body->data.size();
  body->data.append(data, std::min(bytes, room));
  if (bytes > room) {
    body->over = true;
    return 0;  // anything but `bytes` aborts the transfer with CURLE_WRITE_ERROR
  }
  return bytes;
}

struct HandleDeleter {
  const CurlApi* api;
  void operator()(CURL* handle) const noexcept { api->easy_cleanup(handle); }
};

// `text` quoted for a reason: one line, at most 60 characters of it.
std::string quoted(std::string_view text) {
  constexpr std::size_t kShown = 60;
  std::string out = "\"";
  for (const char c : text.substr(0, kShown)) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  }
  out += text.size() > kShown ? "...\"" : "\"";
  return out;
}

std::string transfer_error(const CurlApi& curl, CURLcode code, CURL* handle, const char* errbuf,
                           std::chrono::milliseconds timeout) {
  std::string detail = one_line(errbuf[0] != '\0' ? errbuf : curl.easy_strerror(code));
  switch (code) {
    case CURLE_TOO_MANY_REDIRECTS:
      return "more than " + std::to_string(kMaxRedirects) + " redirects";
    case CURLE_OPERATION_TIMEDOUT:
      return "timed out after " + timeout_text(timeout);
    case CURLE_COULDNT_CONNECT: {
      long os_errno = 0;
      curl.easy_getinfo(handle, CURLINFO_OS_ERRNO, &os_errno);
      return "connect: " + (os_errno != 0 ? errno_text(static_cast<int>(os_errno)) : detail);
    }
    case CURLE_COULDNT_RESOLVE_HOST:
      return "host: " + detail;
    case CURLE_UNSUPPORTED_PROTOCOL: {
      long redirects = 0;
      curl.easy_getinfo(handle, CURLINFO_REDIRECT_COUNT, &redirects);
      return redirects > 0 ? "redirected to a URL that is not http:// or https://" : detail;
    }
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CACERT_BADFILE:
      return "TLS: " + detail;
    default:
      return detail;
  }
}

}  // namespace

Outcome run_http(const Spec& spec, Clock::time_point deadline) {
  Outcome out;
  std::string why;
  const CurlApi* api = curl_api(why);
  if (api == nullptr) {
    out.reason = why;
    return out;
  }
  const CurlApi& curl = *api;
  const std::unique_ptr<CURL, HandleDeleter> handle(curl.easy_init(), HandleDeleter{api});
  if (!handle) {
    out.reason = "libcurl: cannot create a handle";
    return out;
  }
  CURL* h = handle.get();
  Body body;
  char errbuf[CURL_ERROR_SIZE] = {};
  // A 3xx the check expects is only seen when redirects are not followed.
  const bool follow = spec.expect_status / 100 != 3;

  // Every option is checked: a libcurl that silently ignored the protocol restriction or the
  // timeout would run the check without its limits, so it fails instead.
  CURLcode set = CURLE_OK;
  const auto option = [&](CURLoption opt, auto value) {
    if (set == CURLE_OK)
      set = curl.easy_setopt(h, opt, value);
  };
  option(CURLOPT_URL, spec.url.c_str());
  option(CURLOPT_ERRORBUFFER, static_cast<char*>(errbuf));
  option(CURLOPT_NOSIGNAL, 1L);  // no SIGALRM for resolver timeouts: labd has threads
  option(CURLOPT_PROTOCOLS_STR, kProtocols);
  option(CURLOPT_REDIR_PROTOCOLS_STR, kProtocols);
  option(CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
  option(CURLOPT_MAXREDIRS, kMaxRedirects);
  // The whole transfer, redirects and name resolution included; never 0, which means no limit.
  option(CURLOPT_TIMEOUT_MS, static_cast<long>(std::max(1, poll_timeout(deadline))));
  // A check probes the node's own path to the URL: labd's environment (http_proxy) must not
  // route it elsewhere.
  option(CURLOPT_PROXY, "");
  option(CURLOPT_USERAGENT, "labd-check");
  option(CURLOPT_SSL_VERIFYPEER, 1L);
  option(CURLOPT_SSL_VERIFYHOST, 2L);
  option(CURLOPT_WRITEFUNCTION, on_body);
  option(CURLOPT_WRITEDATA, static_cast<void*>(&body));
  if (set != CURLE_OK) {
    out.reason = std::string("libcurl: ") + curl.easy_strerror(set);
    return out;
  }

  const CURLcode code = curl.easy_perform(h);
  out.output = body.data.substr(0, kMaxOutput);
  out.truncated = body.over || body.data.size() > kMaxOutput;
  // Past kMaxBody the transfer was cut on purpose: judge on what arrived.
  if (code != CURLE_OK && !(code == CURLE_WRITE_ERROR && body.over)) {
    out.reason = transfer_error(curl, code, h, errbuf, spec.timeout);
    return out;
  }

  long status = 0;
  curl.easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  const bool status_ok = spec.expect_status == 0 ? status >= 200 && status <= 299
                                                 : status == static_cast<long>(spec.expect_status);
  out.reason = "HTTP " + std::to_string(status);
  if (!status_ok) {
    if (spec.expect_status != 0)
      out.reason += ", expected " + std::to_string(spec.expect_status);
    return out;
  }
  if (!spec.expect_body.empty() && body.data.find(spec.expect_body) == std::string::npos) {
    out.reason = "body does not contain " + quoted(spec.expect_body);
    if (body.over)
      out.reason += " in its first " + std::to_string(kMaxBody / 1024) + " KiB";
    return out;
  }
  out.passed = true;
  return out;
}

}  // namespace lab::agent::checks::detail
