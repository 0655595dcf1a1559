#pragma once
// Files that are either the old content or the new one after a crash or power cut, never a mix.

#include "shared/errors/error.hpp"

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace lab::agent::files {

/// Writes `content` to `path` atomically: a temporary file in the same directory is written,
/// fsynced, given `mode`, renamed over `path`, and the directory is fsynced. Creates missing
/// parent directories (mode 0755). On failure `path` is unchanged and the temporary removed.
Result<void> write_atomic(const std::filesystem::path& path, std::string_view content,
                          mode_t mode = 0644);

/// The whole content of a regular file; an errno error naming the path when unreadable.
/// Refuses files larger than `max_bytes`.
Result<std::string> read_file(const std::filesystem::path& path,
                              std::size_t max_bytes = std::size_t{16} * 1024 * 1024);

/// Removes `path` if it exists and fsyncs its directory; a missing file is not an error.
Result<void> remove_durable(const std::filesystem::path& path);

/// fsync of a directory, so that a rename or unlink inside it survives a power cut.
Result<void> sync_directory(const std::filesystem::path& dir);

}  // namespace lab::agent::files
