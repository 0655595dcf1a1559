// `lab serve` with the recorder and HTTP boot enabled, driven by curl on loopback: scripts,
// boot files (Range, ETag, HEAD, a sparse 5 GiB file), traversal, malformed requests.
#include "tests/integration/pxe/httpboot/curl.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>

namespace {

using namespace lab::tests;
using lab::tests::httpboot::curl;
using lab::tests::httpboot::raw_exchange;

constexpr std::uint64_t kSparseSize = 5ULL << 30;  // past 4 GiB: 32-bit offsets would wrap

// `lab serve --data-dir D --config lab.toml` on 127.0.0.1, a free port.
class LabServe {
 public:
  explicit LabServe(const std::string& extra_config = "") {
    std::filesystem::create_directories(root() / "agent");
    std::filesystem::create_directories(dir_ / "outside");
    const auto cfg = dir_.write("lab.toml",
                                "[httpboot]\nenabled = true\nlisten = "
                                "\"127.0.0.1:0\"\nroot = \"" +
                                    root().string() + "\"\n" + extra_config);
    serve_.emplace(ChildProcess::start(
        {.argv = {lab_binary(), "serve", "--data-dir", dir_ / "data", "--config", cfg},
         .env = {},
         .netns = {},
         .log = {}}));
    const std::regex listening(R"(component=httpboot msg=listening url=http://127\.0\.0\.1:(\d+))");
    std::smatch m;
    const bool up = wait_until([&] {
      const std::string out = serve_->output();
      if (!std::regex_search(out, m, listening))
        return false;
      port_ = static_cast<std::uint16_t>(std::stoi(m[1]));
      return true;
    });
    if (!up)
      ADD_FAILURE() << "lab serve did not start:\n" << serve_->output();
  }
  LabServe(const LabServe&) = delete;
  LabServe& operator=(const LabServe&) = delete;
  ~LabServe() { EXPECT_EQ(serve_->stop(), 0) << serve_->output(); }

  [[nodiscard]] std::filesystem::path root() const { return dir_ / "root"; }
  [[nodiscard]] std::string url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::string output() const { return serve_->output(); }
  [[nodiscard]] bool running() { return serve_->running(); }
  [[nodiscard]] pid_t pid() const { return serve_->pid(); }

 private:
  TempDir dir_{"lab-httpboot"};
  std::optional<ChildProcess> serve_;
  std::uint16_t port_ = 0;
};

std::string file_bytes(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>('a' + (i * 7 + i / 26) % 26);
  return s;
}

// Resident memory of a process in KiB, from /proc (0 when it cannot be read).
std::uint64_t rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0)
      return std::stoull(line.substr(6));
  }
  return 0;
}

class ServeHttpBoot : public ::testing::Test {
 protected:
  void SetUp() override { LAB_REQUIRE_PROGRAM("curl"); }
};

TEST_F(ServeHttpBoot, GenericScriptChainsToThePerMachineScript) {
  LabServe lab;
  auto r = curl(lab.url("/boot/boot.ipxe"));
  ASSERT_EQ(r.status, 200) << r.error << lab.output();
  EXPECT_EQ(r.body.rfind("#!ipxe\n", 0), 0u) << r.body;
  EXPECT_NE(r.body.find("chain " + lab.url("/boot/${netX/mac}.ipxe")), std::string::npos) << r.body;
  EXPECT_EQ(r.header("Cache-Control"), "no-store");
}

TEST_F(ServeHttpBoot, EachMacGetsItsOwnScriptWithoutRegistrySaidOnTheConsole) {
  LabServe lab;
  for (const auto* spelling : {"52:54:00:AB:CD:01", "52-54-00-ab-cd-01", "525400abcd01"}) {
    auto r = curl(lab.url("/boot/") + spelling + ".ipxe");
    ASSERT_EQ(r.status, 200) << spelling << r.error;
    EXPECT_NE(r.body.find("# lab boot profile discovery for 52:54:00:ab:cd:01\n"),
              std::string::npos)
        << r.body;
    EXPECT_NE(r.body.find("\necho lab: no machine registry (coordinator disabled)"),
              std::string::npos)
        << r.body;
    EXPECT_NE(r.body.find("kernel " + lab.url("/boot/agent/vmlinuz") + " initrd=initrd.img "),
              std::string::npos)
        << r.body;
    EXPECT_EQ(r.body.find("lab.join="), std::string::npos) << r.body;
  }
  auto other = curl(lab.url("/boot/52:54:00:ab:cd:02.ipxe"));
  ASSERT_EQ(other.status, 200);
  EXPECT_NE(other.body.find("for 52:54:00:ab:cd:02\n"), std::string::npos) << other.body;
  // Every GET mints a token once a registry is there: HEAD cannot describe that script.
  auto head = curl(lab.url("/boot/52:54:00:ab:cd:02.ipxe"), {"-I"});
  EXPECT_EQ(head.status, 405);
}

TEST_F(ServeHttpBoot, ProfilesFromConfigAndATokenProfileWithoutRegistryIs500) {
  LabServe lab(R"(
[[httpboot.profiles]]
name = "discovery"
kernel = "disc/vmlinuz"
cmdline = "lab.join={join} quiet"
)");
  auto r = curl(lab.url("/boot/52:54:00:00:00:09.ipxe"));
  EXPECT_EQ(r.status, 500) << r.body;
  EXPECT_NE(r.body.find("no machine registry"), std::string::npos) << r.body;
  EXPECT_EQ(curl(lab.url("/boot/boot.ipxe")).status, 200);  // still serving
}

TEST_F(ServeHttpBoot, RangeSingleAndSuffixEtagAnd304Head) {
  LabServe lab;
  const std::string content = file_bytes(100000);
  { std::ofstream(lab.root() / "agent" / "vmlinuz", std::ios::binary) << content; }
  const std::string u = lab.url("/boot/agent/vmlinuz");

  auto whole = curl(u);
  ASSERT_EQ(whole.status, 200) << whole.error;
  EXPECT_EQ(whole.body, content);
  EXPECT_EQ(whole.header("Accept-Ranges"), "bytes");
  EXPECT_EQ(whole.header("Content-Length"), "100000");
  const std::string etag = whole.header("ETag");
  ASSERT_FALSE(etag.empty());

  auto part = curl(u, {"-r", "1000-1999"});
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.header("Content-Range"), "bytes 1000-1999/100000");
  EXPECT_EQ(part.body, content.substr(1000, 1000));

  auto suffix = curl(u, {"-r", "-500"});
  EXPECT_EQ(suffix.status, 206);
  EXPECT_EQ(suffix.header("Content-Range"), "bytes 99500-99999/100000");
  EXPECT_EQ(suffix.body, content.substr(99500));

  auto open_end = curl(u, {"-r", "99990-"});
  EXPECT_EQ(open_end.status, 206);
  EXPECT_EQ(open_end.body, content.substr(99990));

  auto past = curl(u, {"-r", "200000-"});
  EXPECT_EQ(past.status, 416);
  EXPECT_EQ(past.header("Content-Range"), "bytes */100000");

  auto cached = curl(u, {"-H", "If-None-Match: " + etag});
  EXPECT_EQ(cached.status, 304);
  EXPECT_TRUE(cached.body.empty());
  EXPECT_EQ(cached.header("ETag"), etag);
  auto stale = curl(u, {"-H", "If-None-Match: \"other\""});
  EXPECT_EQ(stale.status, 200);
  EXPECT_EQ(stale.body.size(), content.size());

  auto head = curl(u, {"-I"});
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("Content-Length"), "100000");
  EXPECT_EQ(head.header("ETag"), etag);
  // curl -I hides whether a body followed; on the wire, the answer ends with the headers.
  const std::string raw_head = raw_exchange(
      lab.port(), "HEAD /boot/agent/vmlinuz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(raw_head.rfind("HTTP/1.1 200 ", 0), 0u) << raw_head;
  EXPECT_TRUE(raw_head.ends_with("\r\n\r\n")) << raw_head;
  EXPECT_NE(raw_head.find("Content-Length: 100000\r\n"), std::string::npos) << raw_head;

  // A rewritten file gets a new validator.
  { std::ofstream(lab.root() / "agent" / "vmlinuz", std::ios::binary) << content << "x"; }
  auto changed = curl(u, {"-H", "If-None-Match: " + etag});
  EXPECT_EQ(changed.status, 200);
  EXPECT_NE(changed.header("ETag"), etag);
}

TEST_F(ServeHttpBoot, SparseFilePastFourGibStreamsWithoutBeingLoaded) {
  LabServe lab;
  const auto path = lab.root() / "big.img";
  const std::string tail = "end-of-the-5GiB-file";
  {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, tail.data(), tail.size(), static_cast<off_t>(kSparseSize - tail.size())),
              static_cast<ssize_t>(tail.size()));
    ::close(fd);
  }
  const std::string u = lab.url("/boot/big.img");
  auto head = curl(u, {"-I"});
  ASSERT_EQ(head.status, 200) << head.error;
  EXPECT_EQ(head.header("Content-Length"), std::to_string(kSparseSize));

  auto end = curl(u, {"-r", "-" + std::to_string(tail.size())});
  EXPECT_EQ(end.status, 206);
  EXPECT_EQ(end.body, tail);
  EXPECT_EQ(end.header("Content-Range"), "bytes " + std::to_string(kSparseSize - tail.size()) +
                                             "-" + std::to_string(kSparseSize - 1) + "/" +
                                             std::to_string(kSparseSize));

  const std::uint64_t off = (4ULL << 30) + 5;  // just past the 32-bit boundary
  auto mid = curl(u, {"-r", std::to_string(off) + "-" + std::to_string(off + 9)});
  EXPECT_EQ(mid.status, 206);
  EXPECT_EQ(mid.body, std::string(10, '\0'));

  // The whole file, checked by size: the server's memory stays far below it.
  auto all = curl(u, {"-o", "/dev/null", "-w", "%{size_download}\n"});
  EXPECT_EQ(all.status, 200) << all.error;
  const auto rss = rss_kib(lab.pid());
  EXPECT_GT(rss, 0u);
  EXPECT_LT(rss, 1024u * 1024u) << "lab serve holds " << rss << " KiB after a 5 GiB download";
}

TEST_F(ServeHttpBoot, TraversalAndEscapingSymlinksAreRefused) {
  LabServe lab;
  std::ofstream(lab.root() / "inside.txt") << "ok";
  std::filesystem::create_symlink("/etc/passwd", lab.root() / "passwd-link");
  std::filesystem::create_symlink("inside.txt", lab.root() / "inner-link");
  for (const auto* path :
       {"/boot/../etc/passwd", "/boot/%2e%2e/%2e%2e/etc/passwd", "/boot/agent/../../etc/passwd",
        "/boot//etc/passwd", "/boot/passwd-link", "/boot/./inside.txt"}) {
    auto r = curl(lab.url(path), {"--path-as-is"});
    EXPECT_EQ(r.status, 403) << path << " " << r.body;
    EXPECT_EQ(r.body.find("root:"), std::string::npos) << path;
  }
  EXPECT_EQ(curl(lab.url("/boot/inner-link")).body, "ok");
  EXPECT_EQ(curl(lab.url("/boot/missing")).status, 404);
  EXPECT_EQ(curl(lab.url("/boot/agent")).status, 404);  // a directory
  EXPECT_EQ(curl(lab.url("/etc/passwd")).status, 404);
  EXPECT_EQ(curl(lab.url("/boot/inside.txt"), {"-X", "POST"}).status, 405);
}

TEST_F(ServeHttpBoot, MalformedRequestsGet400AndTheServerKeepsServing) {
  LabServe lab;
  const std::vector<std::string> bad = {
      "GARBAGE\r\n\r\n",
      "GET /boot/boot.ipxe HTTP/9.9\r\nHost: x\r\n\r\n",
      "GET /boot/boot.ipxe HTTP/1.1\r\nNo colon here\r\n\r\n",
      "GET no-slash HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /boot/%zz HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /boot/boot.ipxe HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
      std::string("GET /boot/\0x HTTP/1.1\r\n\r\n", 26),
  };
  for (const auto& req : bad) {
    const std::string answer = raw_exchange(lab.port(), req);
    EXPECT_EQ(answer.rfind("HTTP/1.1 400 ", 0), 0u) << "request: " << req << "\nanswer: " << answer;
  }
  const std::string huge =
      "GET /boot/boot.ipxe HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n";
  EXPECT_EQ(raw_exchange(lab.port(), huge).rfind("HTTP/1.1 431 ", 0), 0u);
  EXPECT_TRUE(lab.running());
  EXPECT_EQ(curl(lab.url("/boot/boot.ipxe")).status, 200);
}

}  // namespace
