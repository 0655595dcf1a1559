#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace lab::shared::crypto {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

/// Wipes memory (OPENSSL_cleanse) before giving it back: for keys and decrypted secrets.
template <class T>
struct CleansingAllocator {
  using value_type = T;  // NOLINT(readability-identifier-naming): Allocator requirement
  CleansingAllocator() = default;
  template <class U>
  CleansingAllocator(const CleansingAllocator<U>& /*unused*/) noexcept {}  // NOLINT
  T* allocate(std::size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept;
  friend bool operator==(const CleansingAllocator&, const CleansingAllocator&) noexcept {
    return true;
  }
};

void cleanse(void* p, std::size_t n) noexcept;

template <class T>
void CleansingAllocator<T>::deallocate(T* p, std::size_t n) noexcept {
  cleanse(p, n * sizeof(T));
  std::allocator<T>().deallocate(p, n);
}

using SecretBytes = std::vector<std::uint8_t, CleansingAllocator<std::uint8_t>>;

inline ByteView as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_chars(ByteView b) noexcept {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline Bytes to_bytes(std::string_view s) {
  return {s.begin(), s.end()};
}

}  // namespace lab::shared::crypto
