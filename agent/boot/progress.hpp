#pragma once
// Reports `labd boot`'s progress to the appliance's HTTP boot server (POST /boot/progress), for
// the machine's boot flight recorder. This is the route that works before the node has a
// certificate, so a refused join still shows up in `lab machine timeline MAC`.

#include "shared/errors/error.hpp"

#include <chrono>
#include <string>
#include <string_view>

namespace lab::agent::boot {

/// The longest detail sent; the server truncates longer ones anyway.
inline constexpr std::size_t kMaxProgressDetail = 400;

/// {"mac","stage","detail"} as the HTTP boot server expects it.
std::string progress_json(std::string_view mac, std::string_view stage, std::string_view detail);

class ProgressReporter {
 public:
  /// `server` is lab.server ("http://10.0.0.1:8080"); with an empty server or MAC every report
  /// is a no-op.
  ProgressReporter(std::string server, std::string mac,
                   std::chrono::milliseconds timeout = std::chrono::milliseconds(1500));

  /// Blocking, bounded by the timeout. A report that does not arrive is only lost for the
  /// recorder; the boot goes on, so the error is for the log.
  Result<void> report(std::string_view stage, std::string_view detail) const;

  [[nodiscard]] bool enabled() const noexcept { return !server_.empty() && !mac_.empty(); }
  void set_mac(std::string mac) { mac_ = std::move(mac); }

 private:
  std::string server_;
  std::string mac_;
  std::chrono::milliseconds timeout_;
};

}  // namespace lab::agent::boot
