#include "pxe/tftp/server/file_cache.hpp"

#include <unistd.h>

#include <cerrno>

namespace lab::pxe::tftp::server {
namespace {

Result<std::vector<std::uint8_t>> read_all(const OpenFile& file) {
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(file.size()));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n =
        ::pread(file.fd(), bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return errno_error("reading " + file.relative());
    if (n == 0)
      break;  // shrank since fstat: serve what is there
    done += static_cast<std::size_t>(n);
  }
  bytes.resize(done);
  return bytes;
}

}  // namespace

Result<std::size_t> PreadSource::read(std::uint64_t offset, std::span<std::uint8_t> out) {
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(file_.fd(), out.data() + done, out.size() - done,
                              static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return errno_error("reading " + file_.relative());
    if (n == 0)
      break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

std::shared_ptr<const std::vector<std::uint8_t>> FileCache::find(const Key& key) {
  const std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end())
    return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  ++hits_;
  return it->second.bytes;
}

void FileCache::insert(const Key& key, std::shared_ptr<const std::vector<std::uint8_t>> bytes) {
  const std::lock_guard lock(mutex_);
  if (bytes->size() > max_total_ || entries_.contains(key))
    return;
  while (total_ + bytes->size() > max_total_ && !lru_.empty()) {
    auto victim = entries_.find(lru_.back());
    total_ -= victim->second.bytes->size();
    entries_.erase(victim);
    lru_.pop_back();
  }
  // Older versions of the same path can never match again.
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (std::get<0>(it->first) == std::get<0>(key) && std::get<3>(it->first) == std::get<3>(key)) {
      total_ -= it->second.bytes->size();
      lru_.erase(it->second.lru);
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  lru_.push_front(key);
  total_ += bytes->size();
  entries_.emplace(key, Entry{std::move(bytes), lru_.begin()});
}

Result<std::unique_ptr<engine::FileSource>> FileCache::source(OpenFile file, bool netascii) {
  if (file.size() > max_file_) {
    if (netascii) {
      return Error(boost::system::errc::make_error_code(boost::system::errc::file_too_large),
                   "netascii transfer of a large file");
    }
    return std::unique_ptr<engine::FileSource>(std::make_unique<PreadSource>(std::move(file)));
  }
  const Key key{file.relative(), file.mtime_ns(), file.size(), netascii};
  auto bytes = find(key);
  if (!bytes) {
    LAB_TRY_ASSIGN(auto raw, read_all(file));
    auto content = std::make_shared<std::vector<std::uint8_t>>(netascii ? engine::to_netascii(raw)
                                                                        : std::move(raw));
    bytes = content;
    insert(key, std::move(content));
  }
  return std::unique_ptr<engine::FileSource>(std::make_unique<engine::MemorySource>(bytes));
}

std::uint64_t FileCache::bytes() const {
  const std::lock_guard lock(mutex_);
  return total_;
}

std::uint64_t FileCache::hits() const {
  const std::lock_guard lock(mutex_);
  return hits_;
}

}  // namespace lab::pxe::tftp::server
