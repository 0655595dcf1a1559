#pragma once
// Small text checks shared by tests that read program output.

#include <string_view>

namespace lab::tests {

/// Whether `needle` occurs in `haystack` (program output, a file read back).
inline bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

}  // namespace lab::tests
