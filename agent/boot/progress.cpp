#include "agent/boot/progress.hpp"

#include "agent/boot/cmdline.hpp"
#include "shared/http/beast_client/client.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

namespace lab::agent::boot {

std::string progress_json(std::string_view mac, std::string_view stage, std::string_view detail) {
  const boost::json::object o{
      {"mac", mac}, {"stage", stage}, {"detail", detail.substr(0, kMaxProgressDetail)}};
  return boost::json::serialize(o);
}

ProgressReporter::ProgressReporter(std::string server, std::string mac,
                                   std::chrono::milliseconds timeout)
    : server_(std::move(server)), mac_(std::move(mac)), timeout_(timeout) {}

Result<void> ProgressReporter::report(std::string_view stage, std::string_view detail) const {
  if (!enabled())
    return {};
  shared::http::BeastClientOptions o;
  o.base_url = server_;
  o.connect_timeout = timeout_;
  o.timeout = timeout_;
  o.max_body = 4096;
  shared::http::BeastClient client(std::move(o));
  LAB_TRY_ASSIGN(auto r, client.post_json("/boot/progress", progress_json(mac_, stage, detail)));
  if (r.status != 204 && r.status != 200) {
    return Error(BootError::progress_refused,
                 fmt::format("{}/boot/progress answered HTTP {}", server_, r.status));
  }
  return {};
}

}  // namespace lab::agent::boot
