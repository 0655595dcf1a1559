#include "images/archive/error.hpp"

namespace lab::images {

const boost::system::error_category& image_category() noexcept {
  static const ErrorCategory<ImageError> kCategory("lab.images",
                                                   [](ImageError e) noexcept -> const char* {
                                                     switch (e) {
                                                       case ImageError::bad_input:
                                                         return "bad input";
                                                       case ImageError::archive_failed:
                                                         return "archive error";
                                                       case ImageError::not_found:
                                                         return "not found";
                                                       case ImageError::command_failed:
                                                         return "command failed";
                                                       case ImageError::write_failed:
                                                         return "cannot write output";
                                                     }
                                                     return "image error";
                                                   });
  return kCategory;
}

}  // namespace lab::images
