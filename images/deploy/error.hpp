#pragma once

#include "shared/errors/error.hpp"

namespace lab::images::deploy {

/// The step of a deploy that failed; each is what the timeline and `lab node list` show.
enum class DeployError {
  unknown_image = 1,  // the server has no such image (404 for its manifest)
  bad_manifest,       // the manifest is not signed by the appliance, or not a rootfs manifest
  no_disk,            // no disk matches (none at all, or none for the selector)
  disk_too_small,     // the chosen disk cannot hold the image
  partition_failed,   // sfdisk refused, or the partitions did not appear
  format_failed,      // mkfs failed
  mount_failed,       // mounting the new file systems failed
  download_failed,    // the server refused, changed the image, or stayed gone past the budget
  archive_failed,     // the stream is not a readable archive, or writing a file failed
  checksum_mismatch,  // the bytes received are not the manifest's (size or SHA-256)
  identity_failed,    // the node's identity could not be put on the disk
  bootloader_failed,  // grub-install or grub-mkconfig failed
};
const boost::system::error_category& deploy_category() noexcept;
inline boost::system::error_code make_error_code(DeployError e) noexcept {
  return {static_cast<int>(e), deploy_category()};
}

}  // namespace lab::images::deploy

template <>
struct boost::system::is_error_code_enum<lab::images::deploy::DeployError> : std::true_type {};
