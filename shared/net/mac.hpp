#pragma once
// MAC addresses as every part spells them: one canonical form, three accepted spellings.

#include <optional>
#include <string>
#include <string_view>

namespace lab::shared::net {

/// The canonical form of a MAC address, "52:54:00:12:34:56" (lower case), from any of
/// "52:54:00:12:34:56", "52-54-00-12-34-56" or "525400123456", in any case. nullopt for
/// anything else (wrong length, mixed separators, non-hex digits).
std::optional<std::string> normalize_mac(std::string_view text);

}  // namespace lab::shared::net
