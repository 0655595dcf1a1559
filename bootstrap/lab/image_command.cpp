// lab image agent-os: builds the netboot kernel + initramfs that runs `labd boot`.
#include "bootstrap/lab/commands.hpp"
#include "images/agentos/agentos.hpp"
#include "shared/cli/cli.hpp"
#include "shared/crypto/encoding.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>

namespace lab::bootstrap::commands {
namespace {

constexpr std::string_view kProgram = "lab image agent-os";

struct AgentOsOptions {
  std::string out;
  std::string kernel_deb;
  std::string kernel_dir = "/var/cache/lab/kernel";
  std::string labd;
  std::string labd_deploy;
  bool no_deploy = false;
  std::string compression = "zstd";
  std::string data_dir;
  bool no_sign = false;
  std::optional<std::int64_t> source_date_epoch;
};

// A program of the agent next to lab (an installed appliance or a build tree: `build_path` is
// its place relative to lab's), else in the system's directories.
std::string default_program(const std::string& name, const std::string& build_path) {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (const auto& p : {self.parent_path() / name, self.parent_path() / build_path}) {
      if (std::filesystem::exists(p, ec)) {
        return std::filesystem::weakly_canonical(p).string();
      }
    }
  }
  for (const std::string dir : {"/usr/bin/", "/usr/local/bin/", "/usr/lib/lab/"}) {
    if (std::filesystem::exists(dir + name, ec)) {
      return dir + name;
    }
  }
  return {};
}

// The appliance's manifest signing key: the coordinator's Ed25519 seed, base64url in a file.
Result<shared::crypto::Ed25519PrivateKey> load_signer(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string text;
  if (!in || !std::getline(in, text)) {
    return Error(images::ImageError::bad_input, "cannot read the signing key " + path.string());
  }
  LAB_TRY_ASSIGN(auto seed, shared::crypto::base64url_decode(text));
  return shared::crypto::Ed25519PrivateKey::from_seed(seed);
}

int run_agent_os(const AgentOsOptions& o) {
  images::AgentOsInputs in;
  auto compression = images::parse_compression(o.compression);
  if (!compression) {
    shared::cli::print_error(kProgram, compression.error(), "--compression zstd|gzip|none");
    return shared::cli::kExitUsage;
  }
  in.compression = *compression;
  if (!o.kernel_deb.empty()) {
    in.kernel_deb = o.kernel_deb;
  } else if (auto deb = images::newest_kernel_deb(o.kernel_dir); deb) {
    in.kernel_deb = *deb;
  } else {
    shared::cli::print_error(kProgram, deb.error(),
                             "pass --kernel-deb FILE (apt-get download linux-image-amd64's "
                             "linux-image-*-amd64 package)");
    return shared::cli::kExitFailure;
  }
  in.labd = o.labd.empty() ? default_program("labd", "../../agent/labd/labd") : o.labd;
  if (in.labd.empty()) {
    shared::cli::print_error(kProgram, "cannot find labd", "pass --labd PATH");
    return shared::cli::kExitFailure;
  }
  if (!o.no_deploy) {
    in.labd_deploy = o.labd_deploy.empty()
                         ? default_program("labd-deploy", "../../agent/deploy/labd-deploy")
                         : o.labd_deploy;
    if (in.labd_deploy.empty()) {
      shared::cli::print_error(kProgram, "cannot find labd-deploy",
                               "pass --labd-deploy PATH, or --no-deploy for an agent OS that "
                               "cannot write images to disk");
      return shared::cli::kExitFailure;
    }
  }
  // SOURCE_DATE_EPOCH as reproducible-builds.org defines it; else the kernel package's mtime,
  // so that rebuilding from the same inputs still gives the same bytes.
  if (o.source_date_epoch) {
    in.source_date_epoch = *o.source_date_epoch;
  } else if (const char* env = std::getenv("SOURCE_DATE_EPOCH");  // NOLINT(concurrency-mt-unsafe)
             env != nullptr && *env != 0) {
    in.source_date_epoch = std::strtoll(env, nullptr, 10);
  } else {
    struct stat st {};
    in.source_date_epoch = ::stat(in.kernel_deb.c_str(), &st) == 0 ? st.st_mtime : 0;
  }
  std::optional<shared::crypto::Ed25519PrivateKey> signer;
  if (!o.no_sign) {
    const char* env = std::getenv("LAB_DATA_DIR");  // NOLINT(concurrency-mt-unsafe): one thread
    const std::filesystem::path data_dir =
        !o.data_dir.empty() ? o.data_dir : (env != nullptr && *env != 0 ? env : "/var/lib/lab");
    auto key = load_signer(data_dir / "bundle.key");
    if (!key) {
      shared::cli::print_error(kProgram, key.error(),
                               "pass --data-dir of an appliance that has run `lab serve`, or "
                               "--no-sign");
      return shared::cli::kExitFailure;
    }
    signer = std::move(*key);
  }
  auto built = images::build_agent_os(in, o.out, signer ? &*signer : nullptr);
  if (!built) {
    shared::cli::print_error(kProgram, built.error());
    return shared::cli::kExitFailure;
  }
  fmt::print("agent OS for kernel {} in {}{}\n", built->kernel_version, o.out,
             in.labd_deploy.empty() ? " (without labd-deploy)" : "");
  for (const auto& f : built->files) {
    fmt::print("  {:<12} {:>10} bytes  sha256 {}\n", f.name, f.size, f.sha256);
  }
  fmt::print("  manifest     {}{}\n", built->manifest.string(),
             built->signature.empty() ? " (unsigned)" : ", signed: " + built->signature.string());
  return shared::cli::kExitOk;
}

}  // namespace

void add_image(CLI::App& app, shared::cli::Action& action) {
  CLI::App* image = app.add_subcommand("image", "Build boot images");
  image->require_subcommand(1);
  auto o = std::make_shared<AgentOsOptions>();
  CLI::App* cmd = image->add_subcommand(
      "agent-os", "Build the netboot kernel and initramfs that enrol a machine with labd");
  cmd->add_option("--out", o->out, "output directory")->required();
  cmd->add_option("--kernel-deb", o->kernel_deb,
                  "Debian linux-image-*.deb (default: newest in --kernel-dir)");
  cmd->add_option("--kernel-dir", o->kernel_dir, "where to look for kernel packages");
  cmd->add_option("--labd", o->labd, "labd binary to include (default: beside lab)");
  cmd->add_option("--labd-deploy", o->labd_deploy,
                  "labd-deploy binary to include, with sfdisk, mke2fs, mkfs.fat and the disk "
                  "and file system modules (default: beside lab)");
  cmd->add_flag("--no-deploy", o->no_deploy,
                "leave labd-deploy out: machines booting this agent OS cannot deploy images");
  cmd->add_option("--compression", o->compression, "zstd (default), gzip or none");
  cmd->add_option("--data-dir", o->data_dir,
                  "appliance data directory holding the signing key (default /var/lib/lab)");
  cmd->add_flag("--no-sign", o->no_sign, "write the manifest without a signature");
  cmd->add_option("--source-date-epoch", o->source_date_epoch,
                  "mtime of every file (default: SOURCE_DATE_EPOCH, else the kernel package's)");
  cmd->callback([o, &action] { action = [o] { return run_agent_os(*o); }; });
}

}  // namespace lab::bootstrap::commands
