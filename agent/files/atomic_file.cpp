#include "agent/files/atomic_file.hpp"

#include <boost/system/errc.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace lab::agent::files {
namespace {

class Fd {
 public:
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  [[nodiscard]] int get() const noexcept { return fd_; }
  int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

Result<void> write_all(int fd, std::string_view content, const std::filesystem::path& path) {
  while (!content.empty()) {
    const ssize_t n = ::write(fd, content.data(), content.size());
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno_error("write " + path.string());
    }
    content.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

}  // namespace

Result<void> sync_directory(const std::filesystem::path& dir) {
  Fd fd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0)
    return errno_error("open directory " + dir.string());
  if (::fsync(fd.get()) != 0)
    return errno_error("fsync directory " + dir.string());
  return {};
}

Result<void> write_atomic(const std::filesystem::path& path, std::string_view content,
                          mode_t mode) {
  const std::filesystem::path dir = path.parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
      return Error(boost::system::error_code(ec), "create directory " + dir.string());
  }
  // A unique temporary beside the target: rename() is atomic only within one file system.
  std::string tmpl = (dir.empty() ? std::filesystem::path(".") : dir).string() + "/." +
                     path.filename().string() + ".XXXXXX";
  Fd fd(::mkostemp(tmpl.data(), O_CLOEXEC));
  if (fd.get() < 0)
    return errno_error("create temporary file for " + path.string());
  auto fail = [&](Error e) {
    ::unlink(tmpl.c_str());
    return e;
  };
  if (::fchmod(fd.get(), mode) != 0)
    return fail(errno_error("chmod " + tmpl));
  if (auto r = write_all(fd.get(), content, tmpl); !r)
    return fail(r.error());
  if (::fsync(fd.get()) != 0)
    return fail(errno_error("fsync " + tmpl));
  if (::close(fd.release()) != 0)
    return fail(errno_error("close " + tmpl));
  if (::rename(tmpl.c_str(), path.c_str()) != 0)
    return fail(errno_error("rename to " + path.string()));
  return sync_directory(dir);
}

Result<std::string> read_file(const std::filesystem::path& path, std::size_t max_bytes) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0)
    return errno_error("open " + path.string());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return errno_error("stat " + path.string());
  if (!S_ISREG(st.st_mode))
    return Error(boost::system::errc::make_error_code(boost::system::errc::invalid_argument),
                 path.string() + " is not a regular file");
  if (static_cast<std::size_t>(st.st_size) > max_bytes)
    return Error(boost::system::errc::make_error_code(boost::system::errc::file_too_large),
                 path.string() + " is larger than " + std::to_string(max_bytes) + " bytes");
  std::string out;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno_error("read " + path.string());
    }
    if (n == 0)
      break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > max_bytes)
      return Error(boost::system::errc::make_error_code(boost::system::errc::file_too_large),
                   path.string() + " is larger than " + std::to_string(max_bytes) + " bytes");
  }
  return out;
}

Result<void> remove_durable(const std::filesystem::path& path) {
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT)
      return {};
    return errno_error("remove " + path.string());
  }
  return sync_directory(path.parent_path());
}

}  // namespace lab::agent::files
