#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace lab {

/// A failure: `code` says where it happened (a component's error enum, registered as an error
/// category, one value per failure site), `detail` says what was wrong in words a person can
/// act on (the file and line, the key, the offending character). Cheap to move.
class Error {
 public:
  Error() = default;
  Error(boost::system::error_code code, std::string detail = {})  // NOLINT: implicit by design
      : code_(code), detail_(std::move(detail)) {}

  template <class Enum>
  requires boost::system::is_error_code_enum<Enum>::value Error(
      Enum e, std::string detail = {})  // NOLINT: implicit so `return Enum::x;` works
      : Error(make_error_code(e), std::move(detail)) {}

  [[nodiscard]] const boost::system::error_code& code() const noexcept { return code_; }
  [[nodiscard]] const std::string& detail() const noexcept { return detail_; }

  /// "detail (category: code message)", or only the code's message when there is no detail.
  [[nodiscard]] std::string message() const;

  /// Prefixes the detail with what was being done: "reading /etc/lab/lab.toml: <detail>".
  Error& context(std::string_view what);

  friend bool operator==(const Error& a, const Error& b) noexcept { return a.code_ == b.code_; }
  template <class Enum>
  requires boost::system::is_error_code_enum<Enum>::value friend bool operator==(const Error& a,
                                                                                 Enum e) noexcept {
    return a.code_ == make_error_code(e);
  }

 private:
  boost::system::error_code code_;
  std::string detail_;
};

/// Found by boost::system::result::value() through ADL; throws boost::system::system_error.
[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

template <class T>
using Result = boost::system::result<T, Error>;

/// An Error from the current errno, with what was being attempted ("open /x").
Error errno_error(std::string detail);

/// The system's text for an errno value ("No such file or directory"), thread-safe.
std::string errno_text(int err);

/// The category of a component's error enum: `name` like "lab.sqlite", and a function that maps
/// each value to a short static message. Define one per enum in a .cpp (see sqlite/error.cpp).
// Instances are function-local statics, never deleted through the base class.
template <class Enum>
class ErrorCategory final  // NOLINT(cppcoreguidelines-virtual-class-destructor)
    : public boost::system::error_category {
 public:
  using MessageFn = const char* (*)(Enum) noexcept;
  constexpr ErrorCategory(const char* name, MessageFn fn) noexcept : name_(name), fn_(fn) {}
  [[nodiscard]] const char* name() const noexcept override { return name_; }
  [[nodiscard]] std::string message(int ev) const override { return fn_(static_cast<Enum>(ev)); }

 private:
  const char* name_;
  MessageFn fn_;
};

}  // namespace lab

/// Evaluates `expr` (a Result<void>) and returns its error from the calling function.
#define LAB_TRY(expr)                            \
  do {                                           \
    if (auto lab_try_r_ = (expr); !lab_try_r_) { \
      return std::move(lab_try_r_).error();      \
    }                                            \
  } while (false)

#define LAB_TRY_CONCAT_INNER(a, b) a##b
#define LAB_TRY_CONCAT(a, b) LAB_TRY_CONCAT_INNER(a, b)

/// `LAB_TRY_ASSIGN(auto x, f());` declares x from f()'s value, or returns f()'s error.
#define LAB_TRY_ASSIGN(decl, expr) \
  LAB_TRY_ASSIGN_IMPL(LAB_TRY_CONCAT(lab_try_r_, __LINE__), decl, expr)
// NOLINTBEGIN(bugprone-macro-parentheses): `decl` is a declaration, `tmp` a name.
#define LAB_TRY_ASSIGN_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                         \
  if (!tmp) {                                \
    return std::move(tmp).error();           \
  }                                          \
  decl = std::move(*tmp)
// NOLINTEND(bugprone-macro-parentheses)
