#pragma once

#include "shared/errors/error.hpp"

namespace lab::images {

/// Where building or reading an image failed.
enum class ImageError {
  bad_input = 1,   // an input file is missing, unreadable or not what it should be
  archive_failed,  // libarchive refused to read or write (its message is in the detail)
  not_found,       // something required is not in the package or on this machine
  command_failed,  // a helper program (ldd) failed
  write_failed,    // an output file could not be written
};
const boost::system::error_category& image_category() noexcept;
inline boost::system::error_code make_error_code(ImageError e) noexcept {
  return {static_cast<int>(e), image_category()};
}

}  // namespace lab::images

template <>
struct boost::system::is_error_code_enum<lab::images::ImageError> : std::true_type {};
