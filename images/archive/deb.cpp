#include "images/archive/deb.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <memory>

namespace lab::images {
namespace {

using ArchivePtr = std::unique_ptr<archive, int (*)(archive*)>;

Error read_error(archive* a, const std::string& what) {
  const char* msg = archive_error_string(a);
  return {ImageError::archive_failed, what + ": " + (msg != nullptr ? msg : "unknown error")};
}

// Reads the current entry's data into a string.
Result<std::string> read_data(archive* a, la_int64_t size, const std::string& what) {
  std::string out;
  if (size > 0) {
    out.reserve(static_cast<std::size_t>(size));
  }
  char buf[64 * 1024];
  for (;;) {
    const la_ssize_t n = archive_read_data(a, buf, sizeof buf);
    if (n < 0) {
      return read_error(a, what);
    }
    if (n == 0) {
      return out;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
}

Result<DebFiles> read_data_tar(const std::string& tar, const std::string& deb_name,
                               const std::function<bool(std::string_view)>& wanted) {
  ArchivePtr a(archive_read_new(), archive_read_free);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_memory(a.get(), tar.data(), tar.size()) != ARCHIVE_OK) {
    return read_error(a.get(), deb_name + " data.tar");
  }
  DebFiles files;
  archive_entry* entry = nullptr;
  for (;;) {
    const int rc = archive_read_next_header(a.get(), &entry);
    if (rc == ARCHIVE_EOF) {
      return files;
    }
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
      return read_error(a.get(), deb_name + " data.tar");
    }
    std::string_view path = archive_entry_pathname(entry);
    if (path.starts_with("./")) {
      path.remove_prefix(2);
    }
    if (archive_entry_filetype(entry) != AE_IFREG || !wanted(path)) {
      continue;
    }
    const std::string name(path);
    std::string what = deb_name;
    what += ' ';
    what += name;
    LAB_TRY_ASSIGN(auto data, read_data(a.get(), archive_entry_size(entry), what));
    files.emplace(name, std::move(data));
  }
}

}  // namespace

Result<DebFiles> extract_from_deb(const std::filesystem::path& deb,
                                  const std::function<bool(std::string_view)>& wanted) {
  ArchivePtr a(archive_read_new(), archive_read_free);
  archive_read_support_format_ar(a.get());
  if (archive_read_open_filename(a.get(), deb.c_str(), std::size_t{64} * 1024) != ARCHIVE_OK) {
    return read_error(a.get(), deb.string());
  }
  archive_entry* entry = nullptr;
  for (;;) {
    const int rc = archive_read_next_header(a.get(), &entry);
    if (rc == ARCHIVE_EOF) {
      break;
    }
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
      return read_error(a.get(), deb.string());
    }
    const std::string_view name = archive_entry_pathname(entry);
    if (name.starts_with("data.tar")) {
      LAB_TRY_ASSIGN(auto tar, read_data(a.get(), archive_entry_size(entry), deb.string()));
      return read_data_tar(tar, deb.string(), wanted);
    }
  }
  return Error(ImageError::bad_input, deb.string() + ": no data.tar member (not a .deb?)");
}

}  // namespace lab::images
