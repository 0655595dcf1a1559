#pragma once

#include "shared/errors/error.hpp"

namespace lab::pxe::httpboot {

enum class HttpBootError {
  bad_script_path = 1,  // /boot/<x>.ipxe where <x> is not a MAC address
  bad_file_path,        // empty, absolute, NUL, "." or ".." segment
  file_not_found,       // nothing at that path under the root
  outside_root,         // resolving the path (a symlink) would leave the root
  not_a_file,           // a directory, FIFO or device
  open_failed,          // any other open/stat failure
  root_unusable,        // the boot file root cannot be opened as a directory
  profile_invalid,      // a profile misses its name or kernel
  profile_selector,     // a profile's selector does not parse
  profile_duplicate,    // two profiles with one name
  unknown_placeholder,  // "{x}" that is not token, join, mac or server
  unsafe_value,         // a value that would break the script (line break, NUL)
  token_required,       // the profile uses {token}/{join} and no token could be issued
  bad_progress,         // a POST /boot/progress body that does not parse; detail names the field
};
const boost::system::error_category& httpboot_category() noexcept;
inline boost::system::error_code make_error_code(HttpBootError e) noexcept {
  return {static_cast<int>(e), httpboot_category()};
}

}  // namespace lab::pxe::httpboot

template <>
struct boost::system::is_error_code_enum<lab::pxe::httpboot::HttpBootError> : std::true_type {};
