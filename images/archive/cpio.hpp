#pragma once

#include "images/archive/error.hpp"

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

namespace lab::images {

enum class Compression { none, gzip, zstd };

/// Parses "none", "gzip" or "zstd".
Result<Compression> parse_compression(std::string_view name);

/// An initramfs under construction: a newc cpio archive that is reproducible by design. Entries
/// are kept in memory and written sorted by path, owned by 0:0, with one fixed mtime, no device
/// or inode numbers taken from the build machine, and no timestamp in the compression header:
/// the same entries always give the same bytes. Parent directories are added implicitly.
class CpioImage {
 public:
  /// Paths are absolute inside the image ("/bin/busybox"); a trailing '/' is ignored.
  void add_directory(const std::string& path, mode_t mode = 0755);
  void add_file(const std::string& path, std::string content, mode_t mode = 0644);
  /// Copies a file of the build machine (following symlinks); keeps its permission bits
  /// unless `mode` is given.
  Result<void> add_file_from(const std::string& path, const std::filesystem::path& source,
                             mode_t mode = 0);
  void add_symlink(const std::string& path, std::string target);
  /// A character device node, e.g. /dev/console (5, 1), so /init has a console before it
  /// mounts devtmpfs.
  void add_char_device(const std::string& path, mode_t mode, unsigned major, unsigned minor);

  [[nodiscard]] bool contains(const std::string& path) const;
  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

  /// Writes the archive to `out` (replaced atomically) with every mtime set to `mtime`.
  Result<void> write(const std::filesystem::path& out, Compression compression,
                     std::int64_t mtime) const;

 private:
  enum class Kind { directory, file, symlink, char_device };
  struct Entry {
    Kind kind = Kind::file;
    mode_t mode = 0644;
    std::string data;  // file content or symlink target
    unsigned major = 0;
    unsigned minor = 0;
  };
  void add(const std::string& path, Entry entry);
  static std::string normalize(const std::string& path);

  std::map<std::string, Entry> entries_;
};

}  // namespace lab::images
