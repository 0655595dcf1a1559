#pragma once

#include "shared/errors/error.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

namespace lab::pxe::tftp::engine {

/// The bytes of one file being sent. The server opens it (confined to its root) and the
/// transfer reads blocks from it at any offset, because a lost window is sent again.
class FileSource {
 public:
  virtual ~FileSource() = default;
  /// Size in bytes, fixed for the life of the transfer (tsize and the last block use it).
  [[nodiscard]] virtual std::uint64_t size() const = 0;
  /// Copies up to out.size() bytes starting at `offset` into `out`; returns how many were
  /// copied, fewer only at the end of the file. An I/O failure is an error.
  virtual Result<std::size_t> read(std::uint64_t offset, std::span<std::uint8_t> out) = 0;
};

/// A file held in memory, shared with a cache: many transfers read the same bytes.
class MemorySource final : public FileSource {
 public:
  explicit MemorySource(std::shared_ptr<const std::vector<std::uint8_t>> bytes)
      : bytes_(std::move(bytes)) {}
  [[nodiscard]] std::uint64_t size() const override { return bytes_->size(); }
  Result<std::size_t> read(std::uint64_t offset, std::span<std::uint8_t> out) override {
    if (offset >= bytes_->size())
      return std::size_t{0};
    const std::size_t n =
        std::min<std::size_t>(out.size(), bytes_->size() - static_cast<std::size_t>(offset));
    std::memcpy(out.data(), bytes_->data() + offset, n);
    return n;
  }

 private:
  std::shared_ptr<const std::vector<std::uint8_t>> bytes_;
};

/// RFC 764 netascii: LF becomes CR LF and a bare CR becomes CR NUL.
std::vector<std::uint8_t> to_netascii(std::span<const std::uint8_t> bytes);

}  // namespace lab::pxe::tftp::engine
