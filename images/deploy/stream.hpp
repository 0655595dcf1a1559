#pragma once
// The image from the appliance straight onto the mounted disk: libcurl downloads it on one
// thread (resuming a dropped transfer with a Range request from the last byte received),
// libarchive decompresses and extracts it on the calling thread, and SHA-256 is computed over
// every byte on the way. Nothing is staged in memory beyond a bounded buffer between the two.

#include "shared/errors/error.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

namespace lab::images::deploy {

struct StreamOptions {
  /// No byte for this long: the connection is given up and resumed where it stopped.
  std::chrono::milliseconds stall_timeout{std::chrono::seconds(15)};
  /// No byte for this long, over every attempt: the server is gone and the deploy fails.
  std::chrono::milliseconds retry_budget{std::chrono::minutes(2)};
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
  /// Bytes received and not yet extracted, at most.
  std::size_t buffer = std::size_t{8} << 20;
  /// Called on the extracting thread as bytes are consumed (received so far, total).
  std::function<void(std::uint64_t, std::uint64_t)> progress;
};

struct StreamResult {
  std::uint64_t bytes = 0;    // of the image, each counted once
  std::uint64_t fetched = 0;  // body bytes the server sent, over every attempt
  std::string sha256;         // hex of the image's bytes
  unsigned resumes = 0;       // attempts after the first
  std::uint64_t entries = 0;  // archive entries written
};

/// Streams `url` (an archive of `size` bytes: tar, compressed as libarchive can read) into
/// `target`, an existing directory. Every path lands under `target`: absolute names and ".."
/// are refused, as is writing through a symbolic link. Owners are the archive's numeric ids.
/// The checksum is the caller's to compare. Errors: unknown_image (404), download_failed,
/// archive_failed.
Result<StreamResult> stream_extract(const std::string& url, std::uint64_t size,
                                    const std::filesystem::path& target,
                                    const StreamOptions& options);

/// A small file from the appliance (a manifest): at most `max` bytes. unknown_image for a 404.
Result<std::string> fetch(const std::string& url, std::size_t max,
                          std::chrono::milliseconds timeout);

}  // namespace lab::images::deploy
