#include "pxe/httpboot/files.hpp"

#include "pxe/httpboot/error.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace lab::pxe::httpboot {
namespace {

// O_NONBLOCK: opening a FIFO planted under the root must not hang the io thread.
constexpr int kOpenFlags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;

int open_beneath(int dir, const std::string& rel) {
  open_how how{};
  how.flags = static_cast<std::uint64_t>(kOpenFlags);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, dir, rel.c_str(), &how, sizeof how));
}

// Without openat2: walk the path one component at a time, refusing every symlink.
int open_no_symlinks(int dir, const std::string& rel) {
  int cur = ::dup(dir);
  if (cur < 0)
    return -1;
  std::size_t start = 0;
  for (;;) {
    const auto slash = rel.find('/', start);
    const std::string part = rel.substr(start, slash == std::string::npos ? slash : slash - start);
    const bool last = slash == std::string::npos;
    const int flags =
        last ? kOpenFlags | O_NOFOLLOW : O_RDONLY | O_CLOEXEC | O_DIRECTORY | O_NOFOLLOW;
    const int next = ::openat(cur, part.c_str(), flags);
    const int saved = errno;
    ::close(cur);
    if (next < 0) {
      errno = saved == ELOOP ? EXDEV : saved;  // a symlink counts as leaving the root
      return -1;
    }
    if (last)
      return next;
    cur = next;
    start = slash + 1;
  }
}

Error open_error(int err, std::string_view rel) {
  const std::string what = "'" + std::string(rel) + "'";
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return {HttpBootError::file_not_found, what};
    case EXDEV:
    case ELOOP:
      return {HttpBootError::outside_root, what};
    default:
      return {HttpBootError::open_failed, what + ": " + std::generic_category().message(err)};
  }
}

}  // namespace

Result<void> check_relative_path(std::string_view relative) {
  if (relative.empty() || relative.front() == '/')
    return Error(HttpBootError::bad_file_path, "empty or absolute path");
  if (relative.find('\0') != std::string_view::npos)
    return Error(HttpBootError::bad_file_path, "NUL in path");
  std::size_t start = 0;
  for (;;) {
    const auto slash = relative.find('/', start);
    const std::string_view part = relative.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (part.empty() || part == "." || part == "..")
      return Error(HttpBootError::bad_file_path, "empty, '.' or '..' segment");
    if (slash == std::string_view::npos)
      return {};
    start = slash + 1;
  }
}

Result<BootFiles> BootFiles::open(const std::filesystem::path& root) {
  const int fd = ::open(root.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECTORY);
  if (fd < 0) {
    return Error(HttpBootError::root_unusable,
                 root.string() + ": " + std::generic_category().message(errno));
  }
  return BootFiles(fd, root);
}

BootFiles::BootFiles(BootFiles&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), root_(std::move(other.root_)) {}

BootFiles& BootFiles::operator=(BootFiles&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    root_ = std::move(other.root_);
  }
  return *this;
}

BootFiles::~BootFiles() {
  if (fd_ >= 0)
    ::close(fd_);
}

Result<OpenFile> BootFiles::open_file(std::string_view relative) const {
  LAB_TRY(check_relative_path(relative));
  const std::string rel(relative);
  int fd = open_beneath(fd_, rel);
  if (fd < 0 && (errno == ENOSYS || errno == EPERM))  // no openat2, or filtered by seccomp
    fd = open_no_symlinks(fd_, rel);
  if (fd < 0)
    return open_error(errno, relative);
  auto file = std::make_shared<const shared::http::File>(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return open_error(errno, relative);
  if (!S_ISREG(st.st_mode))
    return Error(HttpBootError::not_a_file, "'" + rel + "'");
  OpenFile out;
  out.file = std::move(file);
  out.info.size = static_cast<std::uint64_t>(st.st_size);
  out.info.mtime_sec = st.st_mtim.tv_sec;
  out.info.mtime_nsec = st.st_mtim.tv_nsec;
  return out;
}

}  // namespace lab::pxe::httpboot
