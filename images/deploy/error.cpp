#include "images/deploy/error.hpp"

namespace lab::images::deploy {

const boost::system::error_category& deploy_category() noexcept {
  static const ErrorCategory<DeployError> kCategory("lab.deploy",
                                                    [](DeployError e) noexcept -> const char* {
                                                      switch (e) {
                                                        case DeployError::unknown_image:
                                                          return "unknown image";
                                                        case DeployError::bad_manifest:
                                                          return "bad image manifest";
                                                        case DeployError::no_disk:
                                                          return "no disk";
                                                        case DeployError::disk_too_small:
                                                          return "disk too small";
                                                        case DeployError::partition_failed:
                                                          return "partitioning failed";
                                                        case DeployError::format_failed:
                                                          return "formatting failed";
                                                        case DeployError::mount_failed:
                                                          return "mounting failed";
                                                        case DeployError::download_failed:
                                                          return "download failed";
                                                        case DeployError::archive_failed:
                                                          return "extraction failed";
                                                        case DeployError::checksum_mismatch:
                                                          return "checksum mismatch";
                                                        case DeployError::identity_failed:
                                                          return "identity not carried over";
                                                        case DeployError::bootloader_failed:
                                                          return "bootloader installation failed";
                                                      }
                                                      return "unknown deploy error";
                                                    });
  return kCategory;
}

}  // namespace lab::images::deploy
