#pragma once

#include "pxe/events/event.hpp"

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace lab::pxe::recorder {

/// "2026-11-23T11:23:31.123Z" (UTC, milliseconds).
std::string format_rfc3339(std::chrono::system_clock::time_point at);

/// {"mac":"52:54:00:12:34:56","events":[{"at":"<RFC 3339>","kind":"dhcp-ack","ip":"10.0.0.5",
/// "detail":{"arch":"x86-64-uefi"}}]}; "ip" is omitted when unknown. Kinds are
/// events::kind_name(). A detail key given twice keeps its last value.
std::string timeline_json(std::string_view mac, const std::vector<events::Event>& events);

/// One line per event, times relative to the first one:
/// "+0.000s dhcp-discover arch=x86-64-uefi" / "+0.412s dhcp-ack ip=10.0.0.5 …".
/// Values with spaces or quotes are quoted. Empty string for an empty timeline.
std::string timeline_text(const std::vector<events::Event>& events);

}  // namespace lab::pxe::recorder
