#pragma once

#include "pxe/tftp/engine/file_source.hpp"
#include "pxe/tftp/server/root.hpp"

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

namespace lab::pxe::tftp::server {

/// Reads a regular file with pread(2) at any offset; owns the descriptor.
class PreadSource final : public engine::FileSource {
 public:
  explicit PreadSource(OpenFile file) : file_(std::move(file)) {}
  [[nodiscard]] std::uint64_t size() const override { return file_.size(); }
  Result<std::size_t> read(std::uint64_t offset, std::span<std::uint8_t> out) override;

 private:
  OpenFile file_;
};

/// Small, hot boot files (ipxe.efi, undionly.kpxe) kept in memory, so a room full of machines
/// booting at once costs one read. Keyed by path, mtime and size: a replaced file is read again.
/// Bounded in bytes, least recently used evicted first. Thread-safe.
class FileCache {
 public:
  /// Files larger than `max_file` are never cached; the cache holds at most `max_total` bytes.
  FileCache(std::uint64_t max_file, std::uint64_t max_total)
      : max_file_(max_file), max_total_(max_total) {}

  /// A source for `file`: shared cached bytes when it is small enough, else pread on its
  /// descriptor. `netascii` converts the content (in memory; refused above `max_file`, because
  /// converted offsets cannot be computed without reading everything before them).
  Result<std::unique_ptr<engine::FileSource>> source(OpenFile file, bool netascii);

  /// Bytes held now, for tests and metrics.
  [[nodiscard]] std::uint64_t bytes() const;
  [[nodiscard]] std::uint64_t hits() const;

 private:
  using Key = std::tuple<std::string, std::int64_t, std::uint64_t, bool>;
  struct Entry {
    std::shared_ptr<const std::vector<std::uint8_t>> bytes;
    std::list<Key>::iterator lru;
  };
  std::shared_ptr<const std::vector<std::uint8_t>> find(const Key& key);
  void insert(const Key& key, std::shared_ptr<const std::vector<std::uint8_t>> bytes);

  std::uint64_t max_file_;
  std::uint64_t max_total_;
  mutable std::mutex mutex_;
  std::map<Key, Entry> entries_;
  std::list<Key> lru_;  // front: most recently used
  std::uint64_t total_ = 0;
  std::uint64_t hits_ = 0;
};

}  // namespace lab::pxe::tftp::server
