#include "images/deploy/deploy.hpp"

#include "images/deploy/disks.hpp"
#include "images/deploy/error.hpp"
#include "images/deploy/layout.hpp"
#include "images/deploy/manifest.hpp"
#include "shared/crypto/bytes.hpp"
#include "shared/process/process.hpp"

#include <fmt/format.h>

#include <sys/mount.h>

#include <fstream>

namespace lab::images::deploy {
namespace {

namespace fs = std::filesystem;
using Args = std::vector<std::string>;

Result<void> write_file(const fs::path& path, const std::string& content, unsigned mode) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out)
    return Error(DeployError::identity_failed, "cannot write " + path.string());
  fs::permissions(path, static_cast<fs::perms>(mode), ec);
  if (ec)
    return Error(DeployError::identity_failed, "chmod " + path.string() + ": " + ec.message());
  return {};
}

// `where` inside the tree, whatever the tree's own symbolic links say: only plain names.
fs::path in_tree(const fs::path& target, const fs::path& where) {
  return target / where.relative_path();
}

Result<void> carry(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::create_directories(to.parent_path(), ec);
  fs::remove_all(to, ec);
  fs::copy(from, to,
           fs::copy_options::recursive | fs::copy_options::copy_symlinks |
               fs::copy_options::overwrite_existing,
           ec);
  if (ec) {
    return Error(DeployError::identity_failed,
                 "copying " + from.string() + " to " + to.string() + ": " + ec.message());
  }
  // fs::copy keeps file modes; a data directory is private, and so is its copy.
  fs::permissions(to, fs::status(from).permissions(), ec);
  return {};
}

Result<void> bind(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::create_directories(to, ec);
  if (::mount(from.c_str(), to.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
    return Error(DeployError::bootloader_failed,
                 "bind " + from.string() + " on " + to.string() + ": " + errno_text(errno));
  }
  return {};
}

Result<void> in_root(const fs::path& root, const Args& argv) {
  shared::process::RunOptions o;
  o.root = root;
  o.timeout = std::chrono::minutes(5);
  auto r = shared::process::check_output(argv, o);
  if (!r)
    return Error(DeployError::bootloader_failed, r.error().detail());
  return {};
}

class Run {
 public:
  Run(const Plan& plan, const Reporter& report) : p_(plan), report_(report) {}

  Result<Deployed> go() {
    auto r = steps();
    if (!r)
      report_(
          {step_, "failed", r.error().detail().empty() ? r.error().message() : r.error().detail()});
    if (mounted_)
      (void)unmount_all(p_.target);  // the first failure is the one to tell
    return r;
  }

 private:
  void begin(std::string name, std::string detail = {}) {
    step_ = std::move(name);
    report_({step_, "started", std::move(detail)});
  }
  void done(std::string detail = {}) { report_({step_, "done", std::move(detail)}); }

  Result<Deployed> steps() {
    Deployed out;
    begin("image", p_.image);
    if (!p_.appliance)
      return Error(DeployError::bad_manifest, "no appliance key to verify the manifest with");
    LAB_TRY_ASSIGN(auto sig, fetch(p_.image_url + "manifest.sig", std::size_t{64} * 1024,
                                   std::chrono::seconds(30)));
    LAB_TRY_ASSIGN(auto m, open_manifest(shared::crypto::as_bytes(sig), *p_.appliance));
    out.kernel_version = m.kernel_version;
    done(fmt::format("{} ({}), kernel {}, {} to download, {} installed", m.name, m.architecture,
                     m.kernel_version, size_text(m.size), size_text(m.installed_size)));

    begin("disk", p_.disk.empty() ? "the largest fixed disk" : p_.disk);
    LAB_TRY_ASSIGN(auto disk, choose_disk(p_.disk, p_.sys_block, p_.dev));
    const auto need = required_size(m.installed_size);
    if (disk.size < need) {
      return Error(DeployError::disk_too_small,
                   fmt::format("{} has {}; the image needs {}", disk.path.string(),
                               size_text(disk.size), size_text(need)));
    }
    out.disk = disk.path.string();
    done(fmt::format("{} {}{}", disk.path.string(), size_text(disk.size),
                     disk.serial.empty() ? "" : " serial=" + disk.serial));

    begin("partition", disk.path.string());
    LAB_TRY_ASSIGN(auto layout, partition(disk));
    done("GPT: BIOS boot, EFI system " + size_text(kEspSize) + ", root");

    begin("format");
    LAB_TRY(format(layout));
    LAB_TRY(mount(layout, p_.target));
    mounted_ = true;
    done("root ext4 " + layout.root_uuid + ", ESP vfat " + layout.esp_uuid);

    begin("stream", p_.image_url + m.file);
    StreamOptions so = p_.stream;
    unsigned reported = 0;
    so.progress = [&](std::uint64_t got, std::uint64_t total) {
      const auto tenth = total == 0 ? 10U : static_cast<unsigned>(got * 10 / total);
      if (tenth > reported && tenth < 10) {
        reported = tenth;
        report_({"stream", "progress", std::to_string(tenth * 10) + "%"});
      }
      if (p_.stream.progress)
        p_.stream.progress(got, total);
    };
    LAB_TRY_ASSIGN(out.stream, stream_extract(p_.image_url + m.file, m.size, p_.target, so));
    done(fmt::format("{} in {} entries, {} resumed transfer{}", size_text(out.stream.bytes),
                     out.stream.entries, out.stream.resumes, out.stream.resumes == 1 ? "" : "s"));

    begin("verify");
    if (out.stream.bytes != m.size || out.stream.sha256 != m.sha256) {
      return Error(DeployError::checksum_mismatch,
                   fmt::format("received {} bytes with SHA-256 {}; the signed manifest says {} "
                               "bytes with {}",
                               out.stream.bytes, out.stream.sha256, m.size, m.sha256));
    }
    done("sha256 " + m.sha256);

    begin("identity");
    LAB_TRY(write_file(in_tree(p_.target, "etc/fstab"), fstab(layout), 0644));
    for (const auto& [from, to] : p_.carry)
      LAB_TRY(carry(from, in_tree(p_.target, to)));
    for (const auto& f : p_.files)
      LAB_TRY(write_file(in_tree(p_.target, f.path), f.content, f.mode));
    done();

    begin("bootloader");
    LAB_TRY(install_bootloader(p_.target, layout.disk, p_.kernel_cmdline));
    done("GRUB for BIOS and UEFI");

    begin("done");
    mounted_ = false;
    if (auto r = unmount_all(p_.target); !r)
      return r.error();
    done(out.disk);
    return out;
  }

  const Plan& p_;
  const Reporter& report_;
  std::string step_;
  bool mounted_ = false;
};

}  // namespace

Result<void> install_bootloader(const fs::path& target, const fs::path& disk,
                                const std::string& cmdline) {
  for (const char* d : {"dev", "proc", "sys"})
    LAB_TRY(bind(fs::path("/") / d, target / d));
  // Settings beside Debian's /etc/default/grub, which stays the package's.
  const std::string settings = fmt::format(
      "# Written by the lab deploy.\n"
      "GRUB_CMDLINE_LINUX=\"{}\"\n"
      "GRUB_TIMEOUT=1\n"
      "GRUB_TERMINAL=\"console serial\"\n"
      "GRUB_SERIAL_COMMAND=\"serial --unit=0 --speed=115200\"\n"
      "GRUB_DISABLE_OS_PROBER=true\n",
      cmdline);
  if (auto r = write_file(target / "etc/default/grub.d/lab.cfg", settings, 0644); !r)
    return Error(DeployError::bootloader_failed, r.error().detail());
  LAB_TRY(in_root(target, Args{"grub-install", "--target=i386-pc", disk.string()}));
  LAB_TRY(in_root(target, Args{"grub-install", "--target=x86_64-efi", "--efi-directory=/boot/efi",
                               "--removable", "--no-nvram"}));
  LAB_TRY(in_root(target, Args{"grub-mkconfig", "-o", "/boot/grub/grub.cfg"}));
  return {};
}

Result<Deployed> run(const Plan& plan, const Reporter& report) {
  return Run(plan, report).go();
}

}  // namespace lab::images::deploy
