#include "images/agentos/agentos.hpp"

#include "images/agentos/closure.hpp"
#include "images/agentos/init_script.hpp"
#include "images/archive/deb.hpp"
#include "shared/crypto/encoding.hpp"
#include "shared/crypto/hash.hpp"
#include "shared/envelope/envelope.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <fstream>
#include <map>
#include <regex>
#include <system_error>

namespace lab::images {
namespace {

namespace fs = std::filesystem;

// Module folders of the kernel package that hold the NIC drivers and what they depend on.
constexpr std::string_view kModuleDirs[] = {"kernel/drivers/net/",  "kernel/drivers/virtio/",
                                            "kernel/net/core/",     "kernel/drivers/ptp/",
                                            "kernel/drivers/pps/",  "kernel/drivers/block/",
                                            "kernel/drivers/ata/",  "kernel/drivers/scsi/",
                                            "kernel/drivers/nvme/", "kernel/fs/",
                                            "kernel/lib/",          "kernel/crypto/",
                                            "kernel/block/",        "kernel/arch/x86/crypto/"};

Result<void> write_file(const fs::path& path, std::string_view content) {
  const fs::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Error(ImageError::write_failed,
                 tmp.string() + ": " + std::generic_category().message(errno));
  }
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      return Error(ImageError::write_failed,
                   tmp.string() + ": " + std::generic_category().message(err));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    return Error(ImageError::write_failed,
                 tmp.string() + ": " + std::generic_category().message(errno));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    return Error(ImageError::write_failed, path.string() + ": " + ec.message());
  }
  return {};
}

Result<BuiltFile> describe(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Error(ImageError::write_failed, path.string() + ": cannot read back");
  }
  shared::crypto::Sha256 hash;
  BuiltFile f;
  f.name = path.filename().string();
  std::string buf(1 << 20, '\0');
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = static_cast<std::size_t>(in.gcount());
    hash.update(std::string_view(buf.data(), n));
    f.size += n;
  }
  const auto digest = hash.finish();
  f.sha256 = shared::crypto::hex_encode(digest);
  return f;
}

std::string module_name(std::string_view path) {
  std::string name(fs::path(path).filename().string());
  name.resize(name.size() - 3);  // ".ko"
  for (char& c : name) {
    if (c == '-') {
      c = '_';
    }
  }
  return name;
}

// labd with every library it loads, at the paths the loader looks for them.
Result<void> add_program(CpioImage& image, const fs::path& source, const std::string& as) {
  LAB_TRY(image.add_file_from(as, source, 0755));
  LAB_TRY_ASSIGN(auto libs, shared_libraries(source));
  for (const auto& lib : libs) {
    if (!image.contains(lib.string())) {
      LAB_TRY(image.add_file_from(lib.string(), lib, 0755));
    }
  }
  return {};
}

}  // namespace

Result<fs::path> newest_kernel_deb(const fs::path& dir) {
  static const std::regex kName(R"(linux-image-(\d+)\.(\d+)\.(\d+)-(\d+)-[a-z0-9]+_.*\.deb)");
  std::error_code ec;
  fs::path best;
  std::array<int, 4> best_version{};
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (!std::regex_match(name, m, kName)) {
      continue;
    }
    const std::array<int, 4> v{std::stoi(m[1]), std::stoi(m[2]), std::stoi(m[3]), std::stoi(m[4])};
    if (best.empty() || v > best_version) {
      best = e.path();
      best_version = v;
    }
  }
  if (best.empty()) {
    return Error(ImageError::not_found, "no linux-image-*.deb in " + dir.string());
  }
  return best;
}

Result<AgentOsImage> build_agent_os(const AgentOsInputs& in, const fs::path& out_dir,
                                    const shared::crypto::Ed25519PrivateKey* signer) {
  for (const auto& [what, path] :
       {std::pair{"kernel package", in.kernel_deb}, std::pair{"labd", in.labd},
        std::pair{"busybox", in.busybox}, std::pair{"CA certificates", in.ca_certificates}}) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
      return Error(ImageError::bad_input,
                   std::string(what) + " '" + path.string() + "' is not a readable file");
    }
  }
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) {
    return Error(ImageError::write_failed, out_dir.string() + ": " + ec.message());
  }

  // The kernel and the modules the boot interface may need, straight out of the package.
  LAB_TRY_ASSIGN(auto files, extract_from_deb(in.kernel_deb, [](std::string_view p) {
                   if (p.starts_with("boot/vmlinuz-")) {
                     return true;
                   }
                   if (!p.starts_with("lib/modules/") || !p.ends_with(".ko")) {
                     return false;
                   }
                   const auto rest =
                       p.substr(p.find('/', std::string_view("lib/modules/").size()) + 1);
                   for (const auto dir : kModuleDirs) {
                     if (rest.starts_with(dir)) {
                       return true;
                     }
                   }
                   return false;
                 }));
  AgentOsImage image;
  std::string kernel;
  std::map<std::string, std::string> modules;
  for (auto& [path, bytes] : files) {
    if (path.starts_with("boot/vmlinuz-")) {
      image.kernel_version = path.substr(std::string_view("boot/vmlinuz-").size());
      kernel = std::move(bytes);
    } else {
      modules.emplace(module_name(path), std::move(bytes));
    }
  }
  if (kernel.empty()) {
    return Error(ImageError::not_found, in.kernel_deb.string() + " holds no boot/vmlinuz-*");
  }
  auto wanted = in.modules;
  if (!in.labd_deploy.empty())
    wanted.insert(wanted.end(), in.deploy_modules.begin(), in.deploy_modules.end());
  LAB_TRY_ASSIGN(auto order, module_load_order(modules, wanted));

  CpioImage cpio;
  for (const char* dir : {"/dev", "/proc", "/sys", "/run", "/tmp", "/root", "/etc/lab",
                          "/var/lib/labd", "/usr/bin", "/sbin", "/usr/sbin"}) {
    cpio.add_directory(dir);
  }
  cpio.add_char_device("/dev/console", 0600, 5, 1);
  cpio.add_char_device("/dev/null", 0666, 1, 3);
  cpio.add_file("/init", std::string(kAgentOsInit), 0755);
  cpio.add_file("/etc/udhcpc.script", std::string(kUdhcpcScript), 0755);
  LAB_TRY(add_program(cpio, in.busybox, "/bin/busybox"));
  cpio.add_symlink("/bin/sh", "busybox");
  LAB_TRY(add_program(cpio, in.labd, "/bin/labd"));
  if (!in.labd_deploy.empty()) {
    LAB_TRY(add_program(cpio, in.labd_deploy, "/bin/labd-deploy"));
    for (const auto& tool : in.deploy_tools) {
      if (!fs::is_regular_file(tool, ec)) {
        return Error(ImageError::bad_input,
                     tool.string() +
                         ", which labd-deploy runs, is not on this machine (Debian "
                         "packages fdisk, e2fsprogs, dosfstools)");
      }
      LAB_TRY(add_program(cpio, tool, "/usr/sbin/" + tool.filename().string()));
    }
  }
  for (const auto& lib : in.dlopened) {
    if (fs::exists(lib, ec) && !cpio.contains(lib.string())) {
      LAB_TRY(add_program(cpio, lib, lib.string()));
    }
  }
  LAB_TRY(cpio.add_file_from("/etc/ssl/certs/ca-certificates.crt", in.ca_certificates, 0644));
  std::string load_order;
  for (const auto& m : order) {
    cpio.add_file("/lib/modules/" + m + ".ko", modules.at(m), 0644);
    load_order += m + "\n";
  }
  cpio.add_file("/lib/modules/load-order", load_order, 0644);

  const fs::path vmlinuz = out_dir / "vmlinuz";
  const fs::path initrd = out_dir / "initrd.img";
  LAB_TRY(write_file(vmlinuz, kernel));
  LAB_TRY(cpio.write(initrd, in.compression, in.source_date_epoch));
  for (const auto& p : {vmlinuz, initrd}) {
    LAB_TRY_ASSIGN(auto f, describe(p));
    image.files.push_back(std::move(f));
  }

  boost::json::array listed;
  for (const auto& f : image.files) {
    listed.push_back(boost::json::object{{"name", f.name}, {"size", f.size}, {"sha256", f.sha256}});
  }
  boost::json::array module_list;
  for (const auto& m : order) {
    module_list.emplace_back(m);
  }
  LAB_TRY_ASSIGN(auto labd, describe(in.labd));
  std::string labd_deploy_sha256;
  if (!in.labd_deploy.empty()) {
    LAB_TRY_ASSIGN(auto d, describe(in.labd_deploy));
    labd_deploy_sha256 = d.sha256;
  }
  const boost::json::object manifest{
      {"kind", "agent-os"},
      {"kernel_version", image.kernel_version},
      {"kernel_package", in.kernel_deb.filename().string()},
      {"labd_sha256", labd.sha256},
      {"labd_deploy_sha256", labd_deploy_sha256},  // empty: this agent OS cannot deploy
      {"modules", std::move(module_list)},
      {"compression", in.compression == Compression::zstd   ? "zstd"
                      : in.compression == Compression::gzip ? "gzip"
                                                            : "none"},
      {"source_date_epoch", in.source_date_epoch},
      {"files", std::move(listed)}};
  const std::string manifest_text = boost::json::serialize(manifest) + "\n";
  image.manifest = out_dir / "manifest.json";
  LAB_TRY(write_file(image.manifest, manifest_text));
  if (signer != nullptr) {
    LAB_TRY_ASSIGN(auto sealed, shared::envelope::seal(*signer, "manifest",
                                                       shared::crypto::as_bytes(manifest_text)));
    image.signature = out_dir / "manifest.sig";
    LAB_TRY(write_file(image.signature,
                       std::string_view(reinterpret_cast<const char*>(sealed.data()),  // NOLINT
                                        sealed.size())));
  }
  return image;
}

}  // namespace lab::images
