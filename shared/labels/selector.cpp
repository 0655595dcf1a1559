#include "shared/labels/selector.hpp"

#include <algorithm>
#include <cctype>

namespace lab::shared::labels {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t';
}
bool is_word_char(char c) {
  return !is_space(c) && c != ',' && c != '(' && c != ')' && c != '=' && c != '!' &&
         static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
}

// A hand-written recursive-descent parser: small grammar, exact error columns.
class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}
  [[nodiscard]] std::size_t offset() const noexcept { return pos_; }

  Result<void> run(std::vector<Requirement>& terms) {
    skip_spaces();
    if (at_end())
      return {};
    for (;;) {
      LAB_TRY_ASSIGN(Requirement r, requirement());
      terms.push_back(std::move(r));
      skip_spaces();
      if (at_end())
        break;
      if (peek() != ',')
        return fail("expected ',' or the end");
      ++pos_;
      skip_spaces();
    }
    return {};
  }

 private:
  Result<Requirement> requirement() {
    Requirement r;
    if (peek() == '!') {
      ++pos_;
      skip_spaces();
      LAB_TRY_ASSIGN(r.key, key());
      r.op = Operator::not_exists;
      return r;
    }
    LAB_TRY_ASSIGN(r.key, key());
    skip_spaces();
    if (at_end() || peek() == ',') {
      r.op = Operator::exists;
      return r;
    }
    if (peek() == '=') {
      ++pos_;
      if (peek() == '=')
        ++pos_;
      r.op = Operator::equals;
      LAB_TRY_ASSIGN(std::string v, value());
      r.values.push_back(std::move(v));
      return r;
    }
    if (peek() == '!') {
      ++pos_;
      if (peek() != '=')
        return fail("expected '=' after '!'");
      ++pos_;
      r.op = Operator::not_equals;
      LAB_TRY_ASSIGN(std::string v, value());
      r.values.push_back(std::move(v));
      return r;
    }
    const std::size_t op_pos = pos_;
    std::string_view word = take_word();
    if (word == "in" || word == "notin") {
      r.op = word == "in" ? Operator::in : Operator::not_in;
      LAB_TRY_ASSIGN(r.values, value_set());
      return r;
    }
    pos_ = op_pos;
    return fail("expected an operator (=, ==, !=, in, notin), ',' or the end");
  }

  Result<std::string> key() {
    skip_spaces();
    const std::size_t start = pos_;
    std::string_view word = take_word();
    if (word.empty()) {
      pos_ = start;
      return fail("expected a label key");
    }
    if (auto r = validate_key(word); !r) {
      pos_ = start;
      return fail(r.error().detail());
    }
    return std::string(word);
  }

  Result<std::string> value() {
    skip_spaces();
    const std::size_t start = pos_;
    std::string_view word = take_word();
    if (auto r = validate_value(word); !r) {
      pos_ = start;
      return fail(r.error().detail());
    }
    return std::string(word);
  }

  Result<std::vector<std::string>> value_set() {
    skip_spaces();
    if (peek() != '(')
      return fail("expected '(' to open the value set");
    ++pos_;
    std::vector<std::string> values;
    for (;;) {
      skip_spaces();
      if (peek() == ')' && values.empty())
        return fail("the value set is empty");
      // An empty member would print as "()" or "(,a)": use k= or k!= for empty values.
      if (peek() == ',' || peek() == ')')
        return fail("empty value in the value set");
      LAB_TRY_ASSIGN(std::string v, value());
      values.push_back(std::move(v));
      skip_spaces();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ')') {
        ++pos_;
        break;
      }
      return fail("expected ',' or ')' in the value set");
    }
    std::sort(values.begin(), values.end());
    values.erase(std::unique(values.begin(), values.end()), values.end());
    return values;
  }

  std::string_view take_word() {
    const std::size_t start = pos_;
    while (!at_end() && is_word_char(text_[pos_]))
      ++pos_;
    return text_.substr(start, pos_ - start);
  }

  void skip_spaces() {
    while (!at_end() && is_space(text_[pos_]))
      ++pos_;
  }
  [[nodiscard]] bool at_end() const { return pos_ >= text_.size(); }
  [[nodiscard]] char peek() const { return at_end() ? '\0' : text_[pos_]; }

  Error fail(std::string_view why) const {
    std::string found = at_end() ? "the end" : "'" + std::string(1, text_[pos_]) + "'";
    if (!at_end() && static_cast<unsigned char>(text_[pos_]) < 0x20) {
      found = "control character " + std::to_string(static_cast<unsigned char>(text_[pos_]));
    }
    return {LabelError::selector_syntax, "selector '" + std::string(text_) + "' at column " +
                                             std::to_string(pos_ + 1) + ": " + std::string(why) +
                                             ", found " + found};
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace

bool Requirement::matches(const LabelSet& labels) const {
  const auto it = labels.find(key);
  const bool has = it != labels.end();
  switch (op) {
    case Operator::exists:
      return has;
    case Operator::not_exists:
      return !has;
    case Operator::equals:
      return has && it->second == values.front();
    case Operator::not_equals:
      return !has || it->second != values.front();
    case Operator::in:
      return has && std::binary_search(values.begin(), values.end(), it->second);
    case Operator::not_in:
      return !has || !std::binary_search(values.begin(), values.end(), it->second);
  }
  return false;
}

Result<Selector> Selector::parse(std::string_view text) {
  std::size_t ignored = 0;
  return parse(text, ignored);
}

Result<Selector> Selector::parse(std::string_view text, std::size_t& error_at) {
  error_at = 0;
  if (text.size() > kMaxSelectorLength) {
    return Error(LabelError::selector_syntax, "selector is " + std::to_string(text.size()) +
                                                  " characters, at most " +
                                                  std::to_string(kMaxSelectorLength) + " allowed");
  }
  Selector s;
  Parser parser(text);
  if (auto r = parser.run(s.terms_); !r) {
    error_at = std::min(parser.offset(), text.size());
    return r.error();
  }
  return s;
}

bool Selector::matches(const LabelSet& labels) const {
  return std::all_of(terms_.begin(), terms_.end(),
                     [&](const Requirement& r) { return r.matches(labels); });
}

std::string Selector::to_string() const {
  std::string out;
  for (const auto& r : terms_) {
    if (!out.empty())
      out += ',';
    switch (r.op) {
      case Operator::exists:
        out += r.key;
        break;
      case Operator::not_exists:
        out += '!' + r.key;
        break;
      case Operator::equals:
        out += r.key + '=' + r.values.front();
        break;
      case Operator::not_equals:
        out += r.key + "!=" + r.values.front();
        break;
      case Operator::in:
      case Operator::not_in: {
        out += r.key + (r.op == Operator::in ? " in (" : " notin (");
        for (std::size_t i = 0; i < r.values.size(); ++i) {
          if (i > 0)
            out += ',';
          out += r.values[i];
        }
        out += ')';
        break;
      }
    }
  }
  return out;
}

}  // namespace lab::shared::labels
