#pragma once

#include "shared/errors/error.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace lab::pxe::tftp::server {

/// Why a requested name was not opened; each maps to the TFTP error code sent back.
enum class RootError {
  root_unusable = 1,  // the root directory itself cannot be opened (start-up)
  traversal,          // the name has a ".." component: access violation
  escapes_root,       // a symlink on the way resolves outside the root: access violation
  not_found,          // no such file (or a path component is not a directory)
  permission,         // the file exists but may not be read: access violation
  not_regular,        // a directory, device, FIFO or socket: access violation
  io,                 // any other failure of open/stat
};
const boost::system::error_category& root_category() noexcept;
inline boost::system::error_code make_error_code(RootError e) noexcept {
  return {static_cast<int>(e), root_category()};
}

/// An open regular file inside the root. Owns the descriptor.
class OpenFile {
 public:
  OpenFile() = default;
  OpenFile(int fd, std::string relative, std::uint64_t size, std::int64_t mtime_ns) noexcept
      : fd_(fd), relative_(std::move(relative)), size_(size), mtime_ns_(mtime_ns) {}
  OpenFile(OpenFile&& o) noexcept;
  OpenFile& operator=(OpenFile&& o) noexcept;
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  ~OpenFile();

  [[nodiscard]] int fd() const noexcept { return fd_; }
  /// Takes ownership of the descriptor away from this object.
  int release() noexcept;
  /// The name relative to the root after normalisation ("boot/ipxe.efi").
  [[nodiscard]] const std::string& relative() const noexcept { return relative_; }
  [[nodiscard]] std::uint64_t size() const noexcept { return size_; }
  [[nodiscard]] std::int64_t mtime_ns() const noexcept { return mtime_ns_; }

 private:
  int fd_ = -1;
  std::string relative_;
  std::uint64_t size_ = 0;
  std::int64_t mtime_ns_ = 0;
};

/// Normalises a requested name to a path relative to the root: leading '/' removed (as
/// tftp-hpa -s does), "." and empty components dropped. A ".." component is refused even when
/// it would stay inside the root, because no boot file needs one.
Result<std::string> normalize(std::string_view requested);

/// The directory the server is confined to. Names are resolved beneath it with openat2
/// RESOLVE_BENEATH (symlinks may point anywhere inside, never outside); on kernels without
/// openat2 the fallback checks realpath() against the root and opens with O_NOFOLLOW.
class Root {
 public:
  /// Opens the root directory; fails with root_unusable when it is missing or not a directory.
  static Result<Root> open(const std::filesystem::path& dir);
  Root(Root&& o) noexcept;
  Root& operator=(Root&& o) noexcept;
  Root(const Root&) = delete;
  Root& operator=(const Root&) = delete;
  ~Root();

  /// Opens `requested` for reading. Only regular files are returned; the descriptor is
  /// opened non-blocking so a FIFO planted in the root can never stall the caller.
  [[nodiscard]] Result<OpenFile> open_file(std::string_view requested) const;

  /// Forces the realpath fallback (tests exercise it on kernels that have openat2).
  void set_use_openat2(bool use) noexcept { use_openat2_ = use; }

 private:
  Root(int fd, std::filesystem::path real) noexcept : fd_(fd), real_(std::move(real)) {}
  [[nodiscard]] Result<int> open_beneath(const std::string& relative) const;
  [[nodiscard]] Result<int> open_checked(const std::string& relative) const;
  int fd_ = -1;
  std::filesystem::path real_;
  bool use_openat2_ = true;
};

}  // namespace lab::pxe::tftp::server

template <>
struct boost::system::is_error_code_enum<lab::pxe::tftp::server::RootError> : std::true_type {};
