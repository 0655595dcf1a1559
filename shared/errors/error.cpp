#include "shared/errors/error.hpp"

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

#include <cerrno>

namespace lab {

std::string Error::message() const {
  if (detail_.empty()) {
    return code_.message();
  }
  if (!code_) {
    return detail_;
  }
  return detail_ + " (" + code_.category().name() + ": " + code_.message() + ")";
}

Error& Error::context(std::string_view what) {
  detail_ = detail_.empty() ? std::string(what) : std::string(what) + ": " + detail_;
  return *this;
}

void throw_exception_from_error(const Error& e, const boost::source_location& loc) {
  boost::throw_exception(boost::system::system_error(e.code(), e.detail()), loc);
}

Error errno_error(std::string detail) {
  const int saved = errno;
  return {boost::system::error_code(saved, boost::system::system_category()), std::move(detail)};
}

std::string errno_text(int err) {
  return boost::system::system_category().message(err);
}

}  // namespace lab
