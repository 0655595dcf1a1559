#include "shared/errors/error.hpp"

#include <boost/system/system_error.hpp>
#include <gtest/gtest.h>

#include <cerrno>

namespace {

enum class DemoError { first = 1, second };

const boost::system::error_category& demo_category() noexcept {
  static const lab::ErrorCategory<DemoError> kCategory(
      "lab.demo", [](DemoError e) noexcept -> const char* {
        return e == DemoError::first ? "first failure" : "second failure";
      });
  return kCategory;
}

boost::system::error_code make_error_code(DemoError e) noexcept {
  return {static_cast<int>(e), demo_category()};
}

}  // namespace

template <>
struct boost::system::is_error_code_enum<DemoError> : std::true_type {};

namespace {

lab::Result<int> half(int v) {
  if (v % 2 != 0)
    return lab::Error(DemoError::first, "odd value " + std::to_string(v));
  return v / 2;
}

lab::Result<int> quarter(int v) {
  LAB_TRY_ASSIGN(int h, half(v));
  LAB_TRY_ASSIGN(int q, half(h));
  return q;
}

lab::Result<void> check_even(int v) {
  LAB_TRY(half(v));
  return {};
}

TEST(Error, CarriesCategoryCodeAndDetail) {
  lab::Error e(DemoError::second, "while reading x");
  EXPECT_EQ(e.code().category().name(), std::string("lab.demo"));
  EXPECT_EQ(e.code().value(), 2);
  EXPECT_TRUE(e == DemoError::second);
  EXPECT_FALSE(e == DemoError::first);
  EXPECT_EQ(e.message(), "while reading x (lab.demo: second failure)");
}

TEST(Error, MessageWithoutDetailIsTheCodeMessage) {
  lab::Error e(DemoError::first);
  EXPECT_EQ(e.message(), "first failure");
}

TEST(Error, ContextPrefixesTheDetail) {
  lab::Error e(DemoError::first, "bad byte");
  e.context("parsing lease file");
  EXPECT_EQ(e.detail(), "parsing lease file: bad byte");
}

TEST(Error, TryMacrosPropagateTheFirstError) {
  EXPECT_EQ(quarter(8).value(), 2);
  auto r = quarter(6);  // 6/2 = 3 is odd
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().detail(), "odd value 3");
  EXPECT_TRUE(check_even(4));
  EXPECT_FALSE(check_even(5));
}

TEST(Error, ValueOnErrorThrowsSystemErrorWithDetail) {
  auto r = half(3);
  try {
    (void)r.value();
    FAIL() << "value() should have thrown";
  } catch (const boost::system::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("odd value 3"), std::string::npos);
    EXPECT_EQ(e.code(), make_error_code(DemoError::first));
  }
}

TEST(Error, ErrnoErrorUsesTheSystemCategory) {
  errno = ENOENT;
  lab::Error e = lab::errno_error("open /nonexistent");
  EXPECT_EQ(e.code().value(), ENOENT);
  EXPECT_EQ(&e.code().category(), &boost::system::system_category());
  EXPECT_NE(e.message().find("open /nonexistent"), std::string::npos);
}

}  // namespace
