#pragma once
// "Did you mean ...?": the nearest of a set of names to one an operator typed.

#include <string>
#include <string_view>
#include <vector>

namespace lab::shared::text {

/// Edits between two words: insertions, deletions, substitutions and swaps of two neighbouring
/// characters, one each (optimal string alignment distance: "lsit" is one edit from "list").
std::size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate nearest to `typed` within `max_distance` edits (the first one on a tie), or
/// empty when none is that close.
std::string closest(std::string_view typed, const std::vector<std::string>& candidates,
                    std::size_t max_distance = 2);

}  // namespace lab::shared::text
