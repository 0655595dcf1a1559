#include "pxe/recorder/render.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <ctime>

namespace lab::pxe::recorder {
namespace {

bool needs_quotes(std::string_view v) {
  if (v.empty())
    return true;
  for (const char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20)
      return true;
  }
  return false;
}

void append_value(std::string& out, std::string_view v) {
  if (!needs_quotes(v)) {
    out += v;
    return;
  }
  out += '"';
  for (const char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  out += '"';
}

}  // namespace

std::string format_rfc3339(std::chrono::system_clock::time_point at) {
  using namespace std::chrono;
  const auto ms_total = duration_cast<milliseconds>(at.time_since_epoch()).count();
  auto secs = static_cast<std::time_t>(ms_total / 1000);
  auto ms = ms_total % 1000;
  if (ms < 0) {
    ms += 1000;
    --secs;
  }
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

std::string timeline_json(std::string_view mac, const std::vector<events::Event>& events) {
  boost::json::object root;
  root["mac"] = mac;
  boost::json::array list;
  list.reserve(events.size());
  for (const auto& e : events) {
    boost::json::object o;
    o["at"] = format_rfc3339(e.at);
    o["kind"] = events::kind_name(e.kind);
    if (!e.ip.empty())
      o["ip"] = e.ip;
    boost::json::object detail;
    for (const auto& [k, v] : e.detail)
      detail[k] = v;
    o["detail"] = std::move(detail);
    list.emplace_back(std::move(o));
  }
  root["events"] = std::move(list);
  return boost::json::serialize(root);
}

std::string timeline_text(const std::vector<events::Event>& events) {
  std::string out;
  if (events.empty())
    return out;
  const auto start = events.front().at;
  for (const auto& e : events) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(e.at - start).count();
    const char sign = us < 0 ? '-' : '+';
    const auto abs_ms = (us < 0 ? -us : us) / 1000;
    out += fmt::format("{}{}.{:03}s {}", sign, abs_ms / 1000, abs_ms % 1000,
                       events::kind_name(e.kind));
    if (!e.ip.empty()) {
      out += " ip=";
      append_value(out, e.ip);
    }
    for (const auto& [k, v] : e.detail) {
      out += ' ';
      out += k;
      out += '=';
      append_value(out, v);
    }
    out += '\n';
  }
  return out;
}

}  // namespace lab::pxe::recorder
