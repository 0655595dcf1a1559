#pragma once

#include "shared/labels/label.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace lab::shared::labels {

enum class Operator { equals, not_equals, in, not_in, exists, not_exists };

/// One term of a selector. Semantics as Kubernetes: `!=` and `notin` also match a node that
/// lacks the key.
struct Requirement {
  std::string key;
  Operator op = Operator::exists;
  std::vector<std::string> values;  // one for =/!=, one or more (sorted) for in/notin

  [[nodiscard]] bool matches(const LabelSet& labels) const;
  friend bool operator==(const Requirement&, const Requirement&) = default;
};

/// A Kubernetes-style label selector: `role=web,env in (prod,stage),!gpu`. Terms are ANDed;
/// the empty selector matches every node.
class Selector {
 public:
  /// Parses; on failure selector_syntax with "column N" pointing at the offending character.
  static Result<Selector> parse(std::string_view text);
  /// The same, and on failure the 0-based offset of the offending character in `error_at`
  /// (text.size() at the end), for a caret under it.
  static Result<Selector> parse(std::string_view text, std::size_t& error_at);

  [[nodiscard]] bool matches(const LabelSet& labels) const;
  [[nodiscard]] const std::vector<Requirement>& requirements() const noexcept { return terms_; }
  [[nodiscard]] bool empty() const noexcept { return terms_.empty(); }
  /// Canonical text: parse(to_string()) gives an equal selector.
  [[nodiscard]] std::string to_string() const;

  friend bool operator==(const Selector&, const Selector&) = default;

 private:
  std::vector<Requirement> terms_;
};

inline constexpr std::size_t kMaxSelectorLength = 4096;

}  // namespace lab::shared::labels
