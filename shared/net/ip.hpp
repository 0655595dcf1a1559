#pragma once
// IP address literals, as tokens bind them and operators type them.

#include <string_view>

namespace lab::shared::net {

/// Whether `text` is an IPv4 ("10.0.0.5") or IPv6 ("fd00::5") address literal, nothing more.
bool is_ip_literal(std::string_view text);

}  // namespace lab::shared::net
