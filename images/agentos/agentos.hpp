#pragma once

#include "images/archive/cpio.hpp"
#include "shared/crypto/keys.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lab::images {

/// What goes into the agent OS: a Debian kernel package (unpacked here, never installed), the
/// labd to run, busybox for the shell and tools, CA certificates, the NIC modules to load.
struct AgentOsInputs {
  std::filesystem::path kernel_deb;
  std::filesystem::path labd;
  /// labd-deploy, which writes rootfs images to disk (empty: the agent OS cannot deploy), and
  /// the programs it runs: required with it.
  std::filesystem::path labd_deploy;
  std::vector<std::filesystem::path> deploy_tools = {"/usr/sbin/sfdisk", "/usr/sbin/mke2fs",
                                                     "/usr/sbin/mkfs.fat"};
  std::filesystem::path busybox = "/bin/busybox";
  std::filesystem::path ca_certificates = "/etc/ssl/certs/ca-certificates.crt";
  /// Loaded at boot in dependency order (dependencies are added from the modules' own
  /// "depends=" information).
  std::vector<std::string> modules = {"virtio_pci", "virtio_net", "e1000", "e1000e"};
  /// Added with labd_deploy: the disks (virtio, SATA, SCSI, NVMe) and the file systems a
  /// deploy writes (ext4 with its checksum, FAT with the code pages its mount asks for).
  std::vector<std::string> deploy_modules = {"virtio_blk",     "ahci",     "sd_mod", "nvme",
                                             "crc32c_generic", "ext4",     "vfat",   "nls_cp437",
                                             "nls_iso8859_1",  "nls_ascii"};
  /// Libraries labd opens with dlopen (so ldd cannot see them) and needs on real machines:
  /// tpm2-tss (opened only while the TPM is in use) and its TPM device TCTI, and libcurl
  /// (opened on the first HTTP health check). Added with their own closures when present on
  /// this machine.
  std::vector<std::filesystem::path> dlopened = {"/lib/x86_64-linux-gnu/libtss2-esys.so.0",
                                                 "/lib/x86_64-linux-gnu/libtss2-tctildr.so.0",
                                                 "/lib/x86_64-linux-gnu/libtss2-mu.so.0",
                                                 "/lib/x86_64-linux-gnu/libtss2-rc.so.0",
                                                 "/lib/x86_64-linux-gnu/libtss2-tcti-device.so.0",
                                                 "/lib/x86_64-linux-gnu/libcurl.so.4"};
  Compression compression = Compression::zstd;
  /// Every mtime in the image (SOURCE_DATE_EPOCH).
  std::int64_t source_date_epoch = 0;
};

struct BuiltFile {
  std::string name;  // in the output directory
  std::uint64_t size = 0;
  std::string sha256;  // hex
};

struct AgentOsImage {
  std::string kernel_version;       // "6.1.0-56-amd64"
  std::vector<BuiltFile> files;     // vmlinuz, initrd.img
  std::filesystem::path manifest;   // manifest.json
  std::filesystem::path signature;  // manifest.sig (empty when unsigned)
};

/// The netboot pair vmlinuz + initrd.img in `out_dir`, with manifest.json (sizes and SHA-256
/// of both, the inputs' versions) and, when `signer` is given, manifest.sig: a signed envelope
/// of kind "manifest" holding manifest.json. Same inputs, same bytes.
Result<AgentOsImage> build_agent_os(const AgentOsInputs& inputs,
                                    const std::filesystem::path& out_dir,
                                    const shared::crypto::Ed25519PrivateKey* signer);

/// The newest linux-image-*.deb in `dir` (by Debian version order of the file names), if any.
Result<std::filesystem::path> newest_kernel_deb(const std::filesystem::path& dir);

}  // namespace lab::images
