#include "pxe/tftp/server/root.hpp"

#include <climits>

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>

namespace lab::pxe::tftp::server {
namespace {

const char* message_of(RootError e) noexcept {
  switch (e) {
    case RootError::root_unusable:
      return "TFTP root cannot be used";
    case RootError::traversal:
      return "path traversal refused";
    case RootError::escapes_root:
      return "path resolves outside the root";
    case RootError::not_found:
      return "file not found";
    case RootError::permission:
      return "permission denied";
    case RootError::not_regular:
      return "not a regular file";
    case RootError::io:
      return "cannot open file";
  }
  return "unknown root error";
}

constexpr int kOpenFlags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;

Error from_errno(int err, const std::string& name) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG:
      return {RootError::not_found, name};
    case EXDEV:
    case ELOOP:
      return {RootError::escapes_root, name};
    case EACCES:
    case EPERM:
      return {RootError::permission, name};
    default:
      return {RootError::io,
              name + ": " + std::string(std::strerror(err))};  // NOLINT(concurrency-mt-unsafe)
  }
}

}  // namespace

const boost::system::error_category& root_category() noexcept {
  static const ErrorCategory<RootError> kCategory("lab.tftp.root", &message_of);
  return kCategory;
}

OpenFile::OpenFile(OpenFile&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      relative_(std::move(o.relative_)),
      size_(o.size_),
      mtime_ns_(o.mtime_ns_) {}

OpenFile& OpenFile::operator=(OpenFile&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    relative_ = std::move(o.relative_);
    size_ = o.size_;
    mtime_ns_ = o.mtime_ns_;
  }
  return *this;
}

OpenFile::~OpenFile() {
  if (fd_ >= 0)
    ::close(fd_);
}

int OpenFile::release() noexcept {
  return std::exchange(fd_, -1);
}

Result<std::string> normalize(std::string_view requested) {
  std::string out;
  std::size_t pos = 0;
  while (pos <= requested.size()) {
    auto slash = requested.find('/', pos);
    if (slash == std::string_view::npos)
      slash = requested.size();
    const std::string_view part = requested.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty() || part == ".")
      continue;
    if (part == "..")
      return Error(RootError::traversal, std::string(requested));
    if (!out.empty())
      out.push_back('/');
    out.append(part);
  }
  if (out.empty())
    return Error(RootError::not_regular, "the root directory itself");
  return out;
}

Result<Root> Root::open(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return Error(RootError::root_unusable,
                 dir.string() + ": " + std::strerror(err));  // NOLINT(concurrency-mt-unsafe)
  }
  std::unique_ptr<char, decltype(&std::free)> real(::realpath(dir.c_str(), nullptr), &std::free);
  if (!real) {
    ::close(fd);
    return Error(RootError::root_unusable, dir.string() + ": realpath failed");
  }
  return Root(fd, real.get());
}

Root::Root(Root&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), real_(std::move(o.real_)), use_openat2_(o.use_openat2_) {}

Root& Root::operator=(Root&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    real_ = std::move(o.real_);
    use_openat2_ = o.use_openat2_;
  }
  return *this;
}

Root::~Root() {
  if (fd_ >= 0)
    ::close(fd_);
}

Result<int> Root::open_beneath(const std::string& relative) const {
  open_how how{};
  how.flags = kOpenFlags;
  // Magic links (/proc/self/fd/N) could lead anywhere; absolute symlinks fail with EXDEV.
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  const long fd = ::syscall(SYS_openat2, fd_, relative.c_str(), &how, sizeof how);
  if (fd < 0)
    return errno_error(relative);
  return static_cast<int>(fd);
}

// For kernels before 5.6: resolve the whole path, check it is under the root, then open the
// resolved path without following a symlink swapped in at the last component meanwhile.
Result<int> Root::open_checked(const std::string& relative) const {
  const std::filesystem::path full = real_ / relative;
  std::unique_ptr<char, decltype(&std::free)> real(::realpath(full.c_str(), nullptr), &std::free);
  if (!real)
    return errno_error(relative);
  const std::string resolved(real.get());
  const std::string prefix = real_.string() == "/" ? "/" : real_.string() + "/";
  if (resolved.compare(0, prefix.size(), prefix) != 0) {
    errno = EXDEV;
    return errno_error(relative);
  }
  const int fd = ::open(resolved.c_str(), kOpenFlags | O_NOFOLLOW);
  if (fd < 0)
    return errno_error(relative);
  return fd;
}

Result<OpenFile> Root::open_file(std::string_view requested) const {
  LAB_TRY_ASSIGN(std::string relative, normalize(requested));
  Result<int> fd = Error();
  if (use_openat2_) {
    fd = open_beneath(relative);
    if (!fd && fd.error().code().value() == ENOSYS)
      fd = open_checked(relative);
  } else {
    fd = open_checked(relative);
  }
  if (!fd)
    return from_errno(fd.error().code().value(), relative);
  struct stat st {};
  if (::fstat(*fd, &st) != 0) {
    const int err = errno;
    ::close(*fd);
    return from_errno(err, relative);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(*fd);
    return Error(RootError::not_regular, relative);
  }
  const std::int64_t mtime_ns =
      static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return OpenFile(*fd, std::move(relative), static_cast<std::uint64_t>(st.st_size), mtime_ns);
}

}  // namespace lab::pxe::tftp::server
