#include "tests/e2e/netboot.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace lab::tests::e2e {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kKernelDir = "/var/cache/lab/kernel";  // install-deps.sh fills it
constexpr std::string_view kIpxeDir = "/usr/lib/ipxe";
constexpr std::string_view kOvmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd";
constexpr std::string_view kOvmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd";
constexpr std::string_view kQemu = "qemu-system-x86_64";

std::atomic<int> g_labs{0};

std::string getenv_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): tests read env at setup
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

}  // namespace

fs::path labd_under_test() {
#ifdef LAB_E2E_LABD_DEFAULT
  const std::string configured = LAB_E2E_LABD_DEFAULT;
#else
  const std::string configured;
#endif
  return getenv_or("LAB_E2E_LABD", configured.empty() ? labd_binary().string() : configured);
}

namespace {

fs::path cache_dir() {
  fs::path d = build_dir() / "tests" / "e2e" / "cache";
  fs::create_directories(d);
  return d;
}

// Size and modification time: enough to notice a rebuilt binary or a new kernel package.
std::string stamp_of(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0)
    return p.string() + " missing\n";
  return p.string() + " " + std::to_string(st.st_size) + " " + std::to_string(st.st_mtim.tv_sec) +
         "." + std::to_string(st.st_mtim.tv_nsec) + "\n";
}

std::string boot_id() {
  std::string id = read_file("/proc/sys/kernel/random/boot_id");
  while (!id.empty() && id.back() == '\n')
    id.pop_back();
  return id;
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::trunc);
  out << text;
  if (!out)
    throw std::runtime_error("cannot write " + p.string());
}

std::vector<std::string> qemu_base(const std::string& accel, const fs::path& serial) {
  std::vector<std::string> argv{std::string(kQemu),
                                "-name",
                                "lab-e2e",
                                "-m",
                                std::to_string(kVmMemoryMib),
                                "-smp",
                                "2",
                                "-nographic",
                                "-monitor",
                                "none",
                                "-no-reboot",
                                "-serial",
                                "file:" + serial.string()};
  if (accel == "kvm") {
    argv.insert(argv.end(), {"-accel", "kvm", "-cpu", "host"});
  } else {
    argv.insert(argv.end(), {"-accel", "tcg"});
  }
  return argv;
}

}  // namespace

std::string_view firmware_name(Firmware f) noexcept {
  return f == Firmware::bios ? "bios" : "uefi";
}

std::string missing_prerequisite(Firmware firmware) {
  if (!is_root())
    return "needs root (network namespaces, tap devices, DHCP on port 67)";
  for (const std::string_view p : {kQemu, std::string_view("busybox"), std::string_view("zstd"),
                                   std::string_view("dnsmasq"), std::string_view("strip")}) {
    if (!have_program(p))
      return std::string(p) + " is not installed (packaging/install-deps.sh)";
  }
  for (const char* f : {"undionly.kpxe", "ipxe.efi"}) {
    if (!fs::exists(fs::path(kIpxeDir) / f))
      return (fs::path(kIpxeDir) / f).string() + " is missing (package ipxe)";
  }
  if (firmware == Firmware::bios && !fs::exists(fs::path(kIpxeDir) / "qemu" / "efi-virtio.rom"))
    return "QEMU's iPXE option ROM is missing (package ipxe-qemu)";
  if (firmware == Firmware::uefi && (!fs::exists(kOvmfCode) || !fs::exists(kOvmfVars)))
    return std::string(kOvmfCode) + " is missing (package ovmf)";
  bool kernel = false;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(kKernelDir, ec)) {
    if (e.path().filename().string().starts_with("linux-image-"))
      kernel = true;
  }
  if (!kernel)
    return "no linux-image-*.deb in " + std::string(kKernelDir) + " (packaging/install-deps.sh)";
  return {};
}

fs::path agent_os_dir() {
  const fs::path labd = labd_under_test();
  // One cache per labd, so switching between the sanitizer and a Release labd rebuilds nothing.
  fs::path out =
      cache_dir() / fmt::format("agent-os-{:016x}", std::hash<std::string>{}(labd.string()));
  std::string stamp = stamp_of(labd) + stamp_of(lab_binary());
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(kKernelDir, ec))
    stamp += stamp_of(e.path());
  if (read_file(out / "stamp") == stamp && fs::exists(out / "vmlinuz") &&
      fs::exists(out / "initrd.img"))
    return out;

  const fs::path work = cache_dir() / ("agent-os.tmp-" + std::to_string(::getpid()));
  fs::remove_all(work);
  fs::create_directories(work);
  // Stripped of everything: an ASan labd is ~240 MB, still 153 MB with its symbols, and the
  // initramfs is unpacked into the VM's 512 MB, where OVMF leaves too little for that
  // ("Initramfs unpacking failed: write error"); at 124 MB it fits and runs. A sanitizer
  // report from inside the VM names offsets, which the unstripped binary resolves.
  auto stripped = run({"strip", "-o", (work / "labd").string(), labd.string()}, 120s);
  if (stripped.exit_code != 0)
    throw std::runtime_error("strip " + labd.string() + ": " + stripped.output);
  auto built = run({lab_binary().string(), "image", "agent-os", "--out", (work / "os").string(),
                    "--labd", (work / "labd").string(), "--kernel-dir", std::string(kKernelDir),
                    "--no-sign", "--no-deploy"},
                   600s);
  if (built.exit_code != 0)
    throw std::runtime_error("lab image agent-os failed:\n" + built.output);
  write_text(work / "os" / "stamp", stamp);
  fs::remove_all(out);
  fs::rename(work / "os", out);
  fs::remove_all(work);
  return out;
}

bool labd_has_boot_command() {
  auto r = run({labd_under_test().string(), "boot", "--help"}, 30s);
  return r.exit_code == 0 && r.output.find("--cmdline") != std::string::npos;
}

std::string accelerator() {
  std::string forced = getenv_or("LAB_E2E_ACCEL", "");
  if (!forced.empty())
    return forced;
  const int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return "tcg";
  ::close(fd);
  const fs::path cached = cache_dir() / "accel";
  const std::string id = boot_id();
  const std::string text = read_file(cached);
  if (text.starts_with(id + " "))
    return text.substr(id.size() + 1);

  // KVM here may be nested and software-backed: iPXE triple-faults and kernels hang under it.
  // A direct boot of the agent OS has to reach /init within seconds to count as working.
  const fs::path os = agent_os_dir();
  TempDir dir("lab-kvm-probe");
  auto argv = qemu_base("kvm", dir / "serial.log");
  argv.insert(argv.end(), {"-kernel", (os / "vmlinuz").string(), "-initrd",
                           (os / "initrd.img").string(), "-append", "console=ttyS0 panic=-1"});
  std::string result = "tcg";
  {
    auto qemu =
        ChildProcess::start({.argv = argv, .env = {}, .netns = {}, .log = dir / "qemu.log"});
    if (wait_until(
            [&] { return read_file(dir / "serial.log").find(kInitStarted) != std::string::npos; },
            20s))
      result = "kvm";
  }
  write_text(cached, id + " " + result);
  return result;
}

// ---------------------------------------------------------------------------------------------

BootLab::BootLab(LabOptions options) : name_(std::move(options.name)) {
  subnet_ = 20 + ((::getpid() * 7 + g_labs.fetch_add(1)) % 200);
  server_ip_ = address(1);
  const std::string n = std::to_string(subnet_);
  const fs::path os = agent_os_dir();

  ns_.ip("link add " + bridge_ + " type bridge forward_delay 0");
  ns_.ip("addr add " + server_ip_ + "/24 dev " + bridge_);
  ns_.ip("link set " + bridge_ + " up");
  ns_.exec("ip tuntap add dev " + tap_ + " mode tap");
  ns_.ip("link set " + tap_ + " master " + bridge_);
  ns_.ip("link set " + tap_ + " up");

  fs::create_directories(dir_ / "tftp");
  fs::create_directories(dir_ / "http" / "agent");
  for (const char* f : {"undionly.kpxe", "ipxe.efi"})
    fs::copy_file(fs::path(kIpxeDir) / f, dir_ / "tftp" / f);
  for (const char* f : {"vmlinuz", "initrd.img"})
    fs::copy_file(os / f, dir_ / "http" / "agent" / f);

  // iPXE waits ~15 s for IPv6 autoconfiguration on a segment without a router: router
  // advertisements end that wait at once. dnsmasq sends them (and, in proxy mode, hands out
  // the IPv4 addresses) from wherever the segment's "router" is.
  const std::string v6 = "fd98:" + n + "::";
  auto dnsmasq_argv = [&](const std::string& iface, bool dhcp4) {
    std::vector<std::string> argv{"dnsmasq",
                                  "--no-daemon",
                                  "--conf-file=/dev/null",
                                  "--port=0",
                                  "--interface=" + iface,
                                  "--bind-interfaces",
                                  "--enable-ra",
                                  "--dhcp-range=::,constructor:" + iface + ",ra-only",
                                  "--dhcp-leasefile=" + (dir_ / "dnsmasq.leases").string(),
                                  "--pid-file=" + (dir_ / "dnsmasq.pid").string(),
                                  "--user=root",
                                  "--log-dhcp"};
    if (dhcp4) {
      argv.insert(
          argv.end(),
          {"--dhcp-range=" + address(100) + "," + address(150) + ",255.255.255.0,1h",
           "--dhcp-option=option:router," + address(2), "--no-ping", "--dhcp-authoritative"});
    }
    return argv;
  };
  if (options.dhcp_mode == "proxy") {
    dhcp_ns_.emplace("e2d");
    Veth link(*dhcp_ns_, address(2) + "/24", ns_, "");
    ns_.ip("link set " + link.b_name() + " master " + bridge_);
    ns_.ip("link set " + link.b_name() + " up");
    dhcp_ns_->ip("-6 addr add " + v6 + "2/64 dev " + link.a_name() + " nodad");
    dnsmasq_.emplace(ChildProcess::start({.argv = dnsmasq_argv(link.a_name(), true),
                                          .env = {},
                                          .netns = dhcp_ns_->name(),
                                          .log = dir_ / "dnsmasq.log"}));
  } else {
    ns_.ip("-6 addr add " + v6 + "1/64 dev " + bridge_ + " nodad");
    dnsmasq_.emplace(ChildProcess::start({.argv = dnsmasq_argv(bridge_, false),
                                          .env = {},
                                          .netns = ns_.name(),
                                          .log = dir_ / "dnsmasq.log"}));
  }
  if (!wait_until(
          [&] {
            const std::string out = dnsmasq_->output();
            return out.find("router advertisement on") != std::string::npos ||
                   out.find("RA on") != std::string::npos || !dnsmasq_->running();
          },
          20s) ||
      !dnsmasq_->running())
    throw std::runtime_error("dnsmasq did not start:\n" + dnsmasq_->output());

  std::string cfg = "[coordinator]\nlisten = \"" + server_ip_ +
                    ":8443\"\n"
                    "advertised_url = \"https://" +
                    server_ip_ + ":8443\"\nauto_accept = \"" + options.auto_accept +
                    "\"\n"
                    "refusal_audit_window = \"1s\"\n"
                    "[dhcp]\nenabled = true\nmode = \"" +
                    options.dhcp_mode + "\"\ninterface = \"" + bridge_ + "\"\nserver_ip = \"" +
                    server_ip_ + "\"\nconflict_probe = false\n";
  if (options.dhcp_mode != "proxy") {
    cfg += "[[dhcp.subnets]]\nsubnet = \"" + address(0) + "/24\"\nrange_start = \"" + address(100) +
           "\"\nrange_end = \"" + address(150) + "\"\nrouter = \"" + server_ip_ + "\"\n";
  }
  cfg += "[tftp]\nenabled = true\nlisten = \"" + server_ip_ + ":69\"\nroot = \"" +
         (dir_ / "tftp").string() + "\"\n[httpboot]\nenabled = true\nlisten = \"" + server_ip_ +
         ":8080\"\nroot = \"" + (dir_ / "http").string() + "\"\n";
  const fs::path cfg_path = dir_.write("lab.toml", cfg);
  serve_.emplace(
      ChildProcess::start({.argv = {lab_binary().string(), "serve", "--config", cfg_path.string(),
                                    "--data-dir", data_dir().string()},
                           .env = {{"LAB_LOG_LEVEL", "debug"}},
                           .netns = ns_.name(),
                           .log = dir_ / "serve.log"}));
  if (!wait_until(
          [&] {
            return serve_->output().find("msg=ready") != std::string::npos || !serve_->running();
          },
          60s) ||
      !serve_->running())
    throw std::runtime_error("lab serve did not start:\n" + serve_->output());
}

BootLab::~BootLab() {
  if (serve_)
    serve_->stop();
  if (dnsmasq_)
    dnsmasq_->stop();
  std::error_code ec;
  fs::copy_file(dir_ / "serve.log", log_prefix().string() + ".serve.log",
                fs::copy_options::overwrite_existing, ec);
  fs::copy_file(dir_ / "dnsmasq.log", log_prefix().string() + ".dnsmasq.log",
                fs::copy_options::overwrite_existing, ec);
}

fs::path BootLab::log_prefix() const {
  const fs::path dir = build_dir() / "tests" / "e2e" / "logs";
  fs::create_directories(dir);
  return dir / name_;
}

std::string BootLab::address(int host) const {
  return "10.98." + std::to_string(subnet_) + "." + std::to_string(host);
}

std::string BootLab::http_url(std::string_view path) const {
  return "http://" + server_ip_ + ":8080" + std::string(path);
}

std::string BootLab::serve_output() const {
  return serve_ ? serve_->output() : std::string();
}

std::string BootLab::dnsmasq_output() const {
  return dnsmasq_ ? dnsmasq_->output() : std::string();
}

CommandResult BootLab::lab(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = ns_.prefix();
  argv.push_back(lab_binary().string());
  argv.insert(argv.end(), args.begin(), args.end());
  return run(
      argv, 60s,
      {{"LAB_DATA_DIR", data_dir().string()}, {"LAB_SERVER", "https://" + server_ip_ + ":8443"}});
}

CommandResult BootLab::sh_in(const std::string& script) const {
  auto argv = ns_.prefix();
  argv.insert(argv.end(), {"sh", "-c", script});
  return run(argv, 60s);
}

// ---------------------------------------------------------------------------------------------

Vm::Vm(const BootLab& lab, Firmware firmware, std::string mac, const std::string& accel)
    : mac_(std::move(mac)), log_prefix_(lab.log_prefix()), serial_(dir_ / "serial.log") {
  auto argv = qemu_base(accel, serial_);
  std::string nic = "virtio-net-pci,netdev=n0,mac=" + mac_;
  if (firmware == Firmware::uefi) {
    // Without the NIC's iPXE ROM, OVMF's own PXE client and TFTP fetch ipxe.efi, as on real
    // UEFI machines.
    fs::copy_file(kOvmfVars, dir_ / "OVMF_VARS.fd");
    argv.insert(argv.end(),
                {"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + std::string(kOvmfCode),
                 "-drive", "if=pflash,format=raw,unit=1,file=" + (dir_ / "OVMF_VARS.fd").string()});
    nic += ",romfile=,bootindex=0";
  } else {
    argv.insert(argv.end(), {"-boot", "n"});
  }
  argv.insert(argv.end(), {"-netdev", "tap,id=n0,ifname=" + lab.tap() + ",script=no,downscript=no",
                           "-device", nic});
  started_ = std::chrono::steady_clock::now();
  qemu_.emplace(ChildProcess::start(
      {.argv = argv, .env = {}, .netns = lab.ns().name(), .log = dir_ / "qemu.log"}));
}

Vm::~Vm() {
  if (qemu_)
    qemu_->stop(2s);
  std::error_code ec;
  fs::copy_file(serial_, log_prefix_.string() + ".console.log",
                fs::copy_options::overwrite_existing, ec);
  fs::copy_file(dir_ / "qemu.log", log_prefix_.string() + ".qemu.log",
                fs::copy_options::overwrite_existing, ec);
}

void Vm::scan() {
  const double now =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  const std::string text = read_file(serial_);
  auto note = [&](std::string_view marker) {
    if (!seen_.contains(marker) && text.find(marker) != std::string::npos)
      seen_.emplace(std::string(marker), now);
  };
  for (const auto m : {kInitStarted, kNetworkUp, kJoining, kJoined, kReady})
    note(m);
  for (const auto m : kFailureMarkers)
    note(m);
}

std::optional<double> Vm::wait_for(std::string_view marker, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    scan();
    const std::string text = read_file(serial_);
    if (!seen_.contains(marker) && text.find(marker) != std::string::npos) {
      seen_.emplace(
          std::string(marker),
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
    }
    if (auto at = seen(marker))
      return at;
    for (const auto m : kFailureMarkers) {
      if (seen_.contains(m))
        return std::nullopt;
    }
    if (!qemu_->running() || std::chrono::steady_clock::now() >= deadline)
      return std::nullopt;
    std::this_thread::sleep_for(50ms);
  }
}

std::optional<double> Vm::seen(std::string_view marker) const {
  if (auto it = seen_.find(marker); it != seen_.end())
    return it->second;
  return std::nullopt;
}

std::string Vm::console() const {
  return read_file(serial_);
}

std::string Vm::tail(std::size_t lines) const {
  auto last = [lines](const std::string& text) {
    std::size_t at = text.size();
    for (std::size_t i = 0; i < lines && at > 0; ++i) {
      at = text.rfind('\n', at - 1);
      if (at == std::string::npos) {
        at = 0;
        break;
      }
    }
    return text.substr(at);
  };
  return "--- serial console (last lines):\n" + last(console()) + "\n--- qemu:\n" +
         last(qemu_ ? qemu_->output() : std::string());
}

}  // namespace lab::tests::e2e
