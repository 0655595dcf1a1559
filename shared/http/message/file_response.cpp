#include "shared/http/message/file_response.hpp"

#include <cstdio>
#include <limits>

namespace lab::shared::http {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// Digits only, no sign, no overflow; false for anything else (including empty).
bool parse_u64(std::string_view s, std::uint64_t& out) {
  if (s.empty())
    return false;
  std::uint64_t v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9')
      return false;
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10)
      return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

// W/"x" and "x" compare equal under the weak comparison.
std::string_view opaque_tag(std::string_view tag) {
  if (tag.size() >= 2 && tag[0] == 'W' && tag[1] == '/')
    tag.remove_prefix(2);
  return tag;
}

}  // namespace

std::string make_etag(const FileInfo& info) {
  char buf[64];
  const auto mtime_us = static_cast<unsigned long long>(info.mtime_sec) * 1000000ULL +
                        static_cast<unsigned long long>(info.mtime_nsec) / 1000ULL;
  std::snprintf(buf, sizeof buf, "\"%llx-%llx\"", static_cast<unsigned long long>(info.size),
                mtime_us);
  return buf;
}

std::string http_date(std::time_t t) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday % 7],
                tm.tm_mday, kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

RangeRequest parse_range(std::string_view header, std::uint64_t size) {
  RangeRequest whole;
  std::string_view h = trim(header);
  constexpr std::string_view kUnit = "bytes=";
  if (h.size() < kUnit.size() || !iequals(h.substr(0, kUnit.size()), kUnit))
    return whole;
  h = trim(h.substr(kUnit.size()));
  if (h.find(',') != std::string_view::npos)
    return whole;  // several ranges: multipart/byteranges is not worth it for boot files
  const auto dash = h.find('-');
  if (dash == std::string_view::npos)
    return whole;
  const std::string_view first_text = trim(h.substr(0, dash));
  const std::string_view last_text = trim(h.substr(dash + 1));
  RangeRequest out;
  if (first_text.empty()) {
    std::uint64_t suffix = 0;
    if (!parse_u64(last_text, suffix))
      return whole;
    if (suffix == 0 || size == 0) {
      out.kind = RangeRequest::Kind::unsatisfiable;
      return out;
    }
    const std::uint64_t n = suffix < size ? suffix : size;
    out.kind = RangeRequest::Kind::partial;
    out.range = {size - n, n};
    return out;
  }
  std::uint64_t first = 0;
  if (!parse_u64(first_text, first))
    return whole;
  std::uint64_t last = std::numeric_limits<std::uint64_t>::max();
  if (!last_text.empty()) {
    if (!parse_u64(last_text, last))
      return whole;
    if (last < first)
      return whole;  // invalid range-spec: ignored (RFC 9110 §14.2)
  }
  if (first >= size) {
    out.kind = RangeRequest::Kind::unsatisfiable;
    return out;
  }
  if (last >= size)
    last = size - 1;
  out.kind = RangeRequest::Kind::partial;
  out.range = {first, last - first + 1};
  return out;
}

bool etag_matches(std::string_view if_none_match, std::string_view etag) {
  std::string_view rest = trim(if_none_match);
  if (rest == "*")
    return true;
  const std::string_view want = opaque_tag(etag);
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const std::string_view item = trim(rest.substr(0, comma));
    if (!item.empty() && opaque_tag(item) == want)
      return true;
    if (comma == std::string_view::npos)
      break;
    rest.remove_prefix(comma + 1);
  }
  return false;
}

Response file_response(const Request& request, std::shared_ptr<const File> file,
                       const FileInfo& info, std::string_view content_type) {
  Response r;
  const std::string etag = make_etag(info);
  r.headers.set("ETag", etag);
  r.headers.set("Last-Modified", http_date(static_cast<std::time_t>(info.mtime_sec)));
  r.headers.set("Accept-Ranges", "bytes");
  if (auto inm = request.header("If-None-Match"); inm && etag_matches(*inm, etag)) {
    r.status = 304;
    return r;
  }
  RangeRequest range;
  if (auto h = request.header("Range")) {
    range = parse_range(*h, info.size);
    // If-Range with another validator (or a date, which this server does not issue as a
    // validator) means "the copy I have is stale": send the whole file (RFC 9110 §13.1.5).
    if (auto if_range = request.header("If-Range"); if_range && trim(*if_range) != etag)
      range.kind = RangeRequest::Kind::whole;
  }
  if (range.kind == RangeRequest::Kind::unsatisfiable) {
    r.status = 416;
    r.headers.set("Content-Range", "bytes */" + std::to_string(info.size));
    return r;
  }
  r.headers.set("Content-Type", std::string(content_type));
  FileBody body{std::move(file), 0, info.size};
  if (range.kind == RangeRequest::Kind::partial) {
    r.status = 206;
    body.offset = range.range.first;
    body.length = range.range.length;
    r.headers.set("Content-Range", "bytes " + std::to_string(range.range.first) + "-" +
                                       std::to_string(range.range.first + range.range.length - 1) +
                                       "/" + std::to_string(info.size));
  }
  r.file = std::move(body);
  return r;
}

}  // namespace lab::shared::http
