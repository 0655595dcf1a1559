#include "images/archive/cpio.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <sys/stat.h>

#include <fstream>
#include <memory>

namespace lab::images {
namespace {

namespace fs = std::filesystem;

using ArchivePtr = std::unique_ptr<archive, int (*)(archive*)>;
using EntryPtr = std::unique_ptr<archive_entry, void (*)(archive_entry*)>;

Error archive_error(archive* a, const std::string& what) {
  const char* msg = archive_error_string(a);
  return {ImageError::archive_failed, what + ": " + (msg != nullptr ? msg : "unknown error")};
}

Result<void> set_compression(archive* a, Compression compression) {
  int rc = ARCHIVE_OK;
  switch (compression) {
    case Compression::none:
      return {};
    case Compression::gzip:
      rc = archive_write_add_filter_gzip(a);
      // No build time in the gzip header: reproducible output.
      if (rc == ARCHIVE_OK) {
        rc = archive_write_set_filter_option(a, "gzip", "timestamp", nullptr);
      }
      break;
    case Compression::zstd:
      rc = archive_write_add_filter_zstd(a);
      // Level 9: a quarter smaller than the default, still a few seconds for a debug labd.
      if (rc == ARCHIVE_OK) {
        rc = archive_write_set_filter_option(a, "zstd", "compression-level", "9");
      }
      break;
  }
  if (rc != ARCHIVE_OK) {
    return archive_error(a, "setting up compression");
  }
  return {};
}

}  // namespace

Result<Compression> parse_compression(std::string_view name) {
  if (name == "none") {
    return Compression::none;
  }
  if (name == "gzip") {
    return Compression::gzip;
  }
  if (name == "zstd") {
    return Compression::zstd;
  }
  return Error(ImageError::bad_input,
               "compression '" + std::string(name) + "' is not one of none, gzip, zstd");
}

std::string CpioImage::normalize(const std::string& path) {
  std::string p = fs::path("/" + path).lexically_normal().string();
  while (p.size() > 1 && p.back() == '/') {
    p.pop_back();
  }
  return p;
}

void CpioImage::add(const std::string& path, Entry entry) {
  const std::string p = normalize(path);
  for (auto parent = fs::path(p).parent_path(); parent != "/" && !parent.empty();
       parent = parent.parent_path()) {
    entries_.try_emplace(parent.string(), Entry{Kind::directory, 0755, {}, 0, 0});
  }
  entries_[p] = std::move(entry);
}

void CpioImage::add_directory(const std::string& path, mode_t mode) {
  add(path, {Kind::directory, mode, {}, 0, 0});
}

void CpioImage::add_file(const std::string& path, std::string content, mode_t mode) {
  add(path, {Kind::file, mode, std::move(content), 0, 0});
}

Result<void> CpioImage::add_file_from(const std::string& path, const fs::path& source,
                                      mode_t mode) {
  std::error_code ec;
  const auto status = fs::status(source, ec);
  if (ec || !fs::is_regular_file(status)) {
    return Error(ImageError::bad_input, source.string() + ": not a readable regular file");
  }
  std::ifstream in(source, std::ios::binary);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    return Error(ImageError::bad_input, source.string() + ": read failed");
  }
  const auto perms = static_cast<mode_t>(status.permissions() & fs::perms::mask);
  add_file(path, std::move(content), mode != 0 ? mode : perms);
  return {};
}

void CpioImage::add_symlink(const std::string& path, std::string target) {
  add(path, {Kind::symlink, 0777, std::move(target), 0, 0});
}

void CpioImage::add_char_device(const std::string& path, mode_t mode, unsigned major,
                                unsigned minor) {
  add(path, {Kind::char_device, mode, {}, major, minor});
}

bool CpioImage::contains(const std::string& path) const {
  return entries_.contains(normalize(path));
}

Result<void> CpioImage::write(const fs::path& out, Compression compression,
                              std::int64_t mtime) const {
  const fs::path tmp = out.string() + ".tmp";
  ArchivePtr a(archive_write_new(), archive_write_free);
  if (!a) {
    return Error(ImageError::archive_failed, "archive_write_new");
  }
  if (archive_write_set_format_cpio_newc(a.get()) != ARCHIVE_OK) {
    return archive_error(a.get(), "cpio newc format");
  }
  LAB_TRY(set_compression(a.get(), compression));
  if (archive_write_open_filename(a.get(), tmp.c_str()) != ARCHIVE_OK) {
    return archive_error(a.get(), "creating " + tmp.string());
  }
  EntryPtr entry(archive_entry_new(), archive_entry_free);
  std::int64_t ino = 0;
  // std::map iterates in path order: "/bin" before "/bin/sh", the same order on every build.
  for (const auto& [path, e] : entries_) {
    archive_entry_clear(entry.get());
    archive_entry_set_pathname(entry.get(), path.c_str() + 1);  // relative, as the kernel expects
    archive_entry_set_uid(entry.get(), 0);
    archive_entry_set_gid(entry.get(), 0);
    archive_entry_set_mtime(entry.get(), mtime, 0);
    archive_entry_set_ino64(entry.get(), ++ino);
    archive_entry_set_dev(entry.get(), 0);
    switch (e.kind) {
      case Kind::directory:
        archive_entry_set_filetype(entry.get(), AE_IFDIR);
        archive_entry_set_nlink(entry.get(), 2);
        archive_entry_set_size(entry.get(), 0);
        break;
      case Kind::file:
        archive_entry_set_filetype(entry.get(), AE_IFREG);
        archive_entry_set_nlink(entry.get(), 1);
        archive_entry_set_size(entry.get(), static_cast<la_int64_t>(e.data.size()));
        break;
      case Kind::char_device:
        archive_entry_set_filetype(entry.get(), AE_IFCHR);
        archive_entry_set_nlink(entry.get(), 1);
        archive_entry_set_rdevmajor(entry.get(), e.major);
        archive_entry_set_rdevminor(entry.get(), e.minor);
        archive_entry_set_size(entry.get(), 0);
        break;
      case Kind::symlink:
        archive_entry_set_filetype(entry.get(), AE_IFLNK);
        archive_entry_set_nlink(entry.get(), 1);
        archive_entry_set_symlink(entry.get(), e.data.c_str());
        archive_entry_set_size(entry.get(), 0);
        break;
    }
    archive_entry_set_perm(entry.get(), e.mode & 07777);
    if (archive_write_header(a.get(), entry.get()) != ARCHIVE_OK) {
      return archive_error(a.get(), "writing " + path);
    }
    if (e.kind == Kind::file && !e.data.empty() &&
        archive_write_data(a.get(), e.data.data(), e.data.size()) !=
            static_cast<la_ssize_t>(e.data.size())) {
      return archive_error(a.get(), "writing " + path);
    }
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) {
    return archive_error(a.get(), "finishing " + tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, out, ec);
  if (ec) {
    return Error(ImageError::write_failed, "renaming " + tmp.string() + ": " + ec.message());
  }
  return {};
}

}  // namespace lab::images
