#include "pxe/httpboot/error.hpp"

namespace lab::pxe::httpboot {
namespace {

const char* message(HttpBootError e) noexcept {
  switch (e) {
    case HttpBootError::bad_script_path:
      return "script path does not name a MAC address";
    case HttpBootError::bad_file_path:
      return "malformed boot file path";
    case HttpBootError::file_not_found:
      return "boot file not found";
    case HttpBootError::outside_root:
      return "path leads outside the boot file root";
    case HttpBootError::not_a_file:
      return "not a regular file";
    case HttpBootError::open_failed:
      return "cannot open boot file";
    case HttpBootError::root_unusable:
      return "boot file root is not a readable directory";
    case HttpBootError::profile_invalid:
      return "invalid boot profile";
    case HttpBootError::profile_selector:
      return "invalid boot profile selector";
    case HttpBootError::profile_duplicate:
      return "duplicate boot profile name";
    case HttpBootError::unknown_placeholder:
      return "unknown placeholder in boot profile";
    case HttpBootError::unsafe_value:
      return "value unsafe for an iPXE script";
    case HttpBootError::token_required:
      return "the boot profile needs a boot token";
    case HttpBootError::bad_progress:
      return "invalid progress report";
  }
  return "unknown httpboot error";
}

}  // namespace

const boost::system::error_category& httpboot_category() noexcept {
  static const ErrorCategory<HttpBootError> kCategory("lab.httpboot", message);
  return kCategory;
}

}  // namespace lab::pxe::httpboot
