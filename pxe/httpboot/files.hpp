#pragma once

#include "shared/errors/error.hpp"
#include "shared/http/message/file_response.hpp"
#include "shared/http/message/message.hpp"

#include <filesystem>
#include <memory>
#include <string_view>

namespace lab::pxe::httpboot {

/// An open boot file and what a conditional or partial GET needs to know about it.
struct OpenFile {
  std::shared_ptr<const shared::http::File> file;
  shared::http::FileInfo info;
};

/// Read-only access to the boot file root. Paths never leave it: ".." segments are refused
/// before the kernel sees them, and symlinks are followed only while they stay inside the
/// root (openat2 RESOLVE_BENEATH; where the kernel lacks it, symlinks are refused outright).
/// Only regular files open. Thread-safe.
class BootFiles {
 public:
  /// Opens the root directory; root_unusable when it is not a readable directory.
  static Result<BootFiles> open(const std::filesystem::path& root);

  BootFiles(BootFiles&& other) noexcept;
  BootFiles& operator=(BootFiles&& other) noexcept;
  BootFiles(const BootFiles&) = delete;
  BootFiles& operator=(const BootFiles&) = delete;
  ~BootFiles();

  /// `relative` as it follows /files/ in a URL ("agent/vmlinuz"). Errors: bad_file_path,
  /// file_not_found, outside_root, not_a_file, open_failed.
  [[nodiscard]] Result<OpenFile> open_file(std::string_view relative) const;

  [[nodiscard]] const std::filesystem::path& root() const noexcept { return root_; }

 private:
  BootFiles(int fd, std::filesystem::path root) noexcept : fd_(fd), root_(std::move(root)) {}
  int fd_ = -1;
  std::filesystem::path root_;
};

/// Checks a relative path: not empty, no leading '/', no NUL, no empty, "." or ".." segment
/// ("a//b" and "a/./b" are refused rather than normalised: no client needs them).
Result<void> check_relative_path(std::string_view relative);

}  // namespace lab::pxe::httpboot
