// `lab serve` with the recorder and HTTP boot enabled, driven by curl on loopback: scripts,
// boot files (Range, ETag, HEAD, a sparse 5 GiB file), traversal, malformed requests.
#include "tests/integration/pxe/httpboot/curl.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <thread>

namespace {

using namespace lab::tests;
using lab::tests::httpboot::curl;
using lab::tests::httpboot::raw_exchange;

constexpr std::uint64_t kSparseSize = 5ULL << 30;  // past 4 GiB: 32-bit offsets would wrap

// `lab serve --data-dir D --config lab.toml` with the recorder and HTTP boot on 127.0.0.1, free
// ports; the coordinator (the machine registry) only when asked for.
class LabServe {
 public:
  explicit LabServe(const std::string& extra_config = "", bool coordinator = false)
      : coordinator_(coordinator) {
    std::filesystem::create_directories(root() / "agent");
    const std::string coordinator_config =
        coordinator ? "[coordinator]\nenabled = true\nlisten = \"127.0.0.1:0\"\n"
                    : "[coordinator]\nenabled = false\n";
    const auto cfg = dir_.write(
        "lab.toml", coordinator_config + "[httpboot]\nenabled = true\nlisten = \"127.0.0.1:0\"\n" +
                        "root = \"" + root().string() + "\"\n" + extra_config);
    config_ = cfg;
    launch();
  }
  /// Stops lab serve (SIGTERM, or SIGKILL when `kill`) and starts it again on the same data
  /// directory; the ports are new.
  void restart(bool kill = false) {
    if (kill) {
      serve_->signal(SIGKILL);
      serve_->wait(5s);
    } else {
      EXPECT_EQ(serve_->stop(), 0) << serve_->output();
    }
    launch();
  }
  LabServe(const LabServe&) = delete;
  LabServe& operator=(const LabServe&) = delete;
  ~LabServe() { EXPECT_EQ(serve_->stop(), 0) << serve_->output(); }

  [[nodiscard]] std::filesystem::path root() const { return dir_ / "root"; }
  [[nodiscard]] std::filesystem::path data_dir() const { return dir_ / "data"; }
  /// The coordinator's operator API, "https://127.0.0.1:<port>".
  [[nodiscard]] const std::string& api_url() const { return api_url_; }
  [[nodiscard]] std::string url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::string output() const { return serve_->output(); }
  [[nodiscard]] bool running() { return serve_->running(); }
  [[nodiscard]] pid_t pid() const { return serve_->pid(); }

 private:
  void launch() {
    const bool coordinator = coordinator_;
    const auto& cfg = config_;
    serve_.emplace(ChildProcess::start(
        {.argv = {lab_binary(), "serve", "--data-dir", data_dir(), "--config", cfg.string()},
         .env = {},
         .netns = {},
         .log = {}}));
    const std::regex listening(R"(component=httpboot msg=listening url=http://127\.0\.0\.1:(\d+))");
    const std::regex api(R"(component=coordinator msg=listening url=(https://\S+))");
    std::smatch m;
    const bool up = wait_until(
        [&] {
          const std::string out = serve_->output();
          if (out.find("msg=ready") == std::string::npos)
            return false;
          if (!std::regex_search(out, m, listening))
            return false;
          port_ = static_cast<std::uint16_t>(std::stoi(m[1]));
          if (coordinator) {
            if (!std::regex_search(out, m, api))
              return false;
            api_url_ = m[1];
          }
          return true;
        },
        60s);
    if (!up)
      ADD_FAILURE() << "lab serve did not start:\n" << serve_->output();
  }

  TempDir dir_{"lab-httpboot"};
  std::filesystem::path config_;
  bool coordinator_ = false;
  std::optional<ChildProcess> serve_;
  std::uint16_t port_ = 0;
  std::string api_url_;
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

// The value of "lab.join=" on the script's kernel line.
std::string join_string(const std::string& script) {
  const auto at = script.find(" lab.join=");
  if (at == std::string::npos)
    return {};
  const auto start = at + 10;
  return script.substr(start, script.find_first_of(" \n", start) - start);
}

TEST_F(ServeHttpBoot, WithTheCoordinatorAScriptCarriesTheOneLiveTokenOfARegisteredMac) {
  LabServe lab("", /*coordinator=*/true);
  ASSERT_FALSE(lab.api_url().empty());
  { std::ofstream(lab.root() / "agent" / "vmlinuz") << "kernel"; }
  const std::string mac = "52:54:00:c0:ff:ee";
  std::string token = read_file(lab.data_dir() / "operator.token");
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back())))
    token.pop_back();
  ASSERT_FALSE(token.empty());
  const std::vector<std::string> auth = {"--cacert", (lab.data_dir() / "ca.pem").string(), "-H",
                                         "Authorization: Bearer " + token};

  // Neither leased by our DHCP (none runs here) nor registered: no token for anyone.
  auto refused = curl(lab.url("/boot/" + mac + ".ipxe"));
  EXPECT_EQ(refused.status, 403) << refused.body;
  auto none = curl(lab.api_url() + "/v1/tokens", auth);
  EXPECT_EQ(none.body, "[]");

  std::vector<std::string> put = auth;
  put.insert(put.end(), {"-X", "PUT", "-H", "Content-Type: application/json", "--data",
                         R"({"ip":"127.0.0.1","description":"test rig"})"});
  ASSERT_EQ(curl(lab.api_url() + "/v1/machines/" + mac, put).status, 200);
  auto first = curl(lab.url("/boot/" + mac + ".ipxe"));
  ASSERT_EQ(first.status, 200) << first.body << lab.output();
  EXPECT_EQ(first.body.find("no machine registry"), std::string::npos) << first.body;
  const std::string join1 = join_string(first.body);
  EXPECT_FALSE(join1.empty()) << first.body;
  // A repeated request (iPXE retries) gets the same token: one live token per MAC.
  auto second = curl(lab.url("/boot/" + mac + ".ipxe"));
  ASSERT_EQ(second.status, 200);
  EXPECT_EQ(join_string(second.body), join1);
  // From another address than the registered one: refused.
  EXPECT_EQ(curl(lab.url("/boot/" + mac + ".ipxe"), {"--interface", "127.0.0.2"}).status, 403);
  EXPECT_EQ(curl(lab.url("/boot/agent/vmlinuz")).body, "kernel");

  // The operator API lists the boot token bound to the MAC and its address, and the timeline.
  auto tokens = curl(lab.api_url() + "/v1/tokens", auth);
  ASSERT_EQ(tokens.status, 200) << tokens.error << tokens.body;
  EXPECT_NE(tokens.body.find(mac), std::string::npos) << tokens.body;
  EXPECT_NE(tokens.body.find("\"ip\":\"127.0.0.1\""), std::string::npos) << tokens.body;
  EXPECT_EQ(tokens.body.find("\"kind\":\"boot\""), tokens.body.rfind("\"kind\":\"boot\""))
      << tokens.body;  // exactly one
  auto timeline = curl(lab.api_url() + "/v1/machines/" + mac + "/timeline", auth);
  ASSERT_EQ(timeline.status, 200) << timeline.error << timeline.body;
  EXPECT_NE(timeline.body.find("\"script-refused\""), std::string::npos) << timeline.body;
  const auto render = timeline.body.find("\"script-render\"");
  EXPECT_NE(render, std::string::npos) << timeline.body;
  EXPECT_NE(timeline.body.find("\"http-fetch\"", render), std::string::npos) << timeline.body;
  EXPECT_NE(timeline.body.find("agent/vmlinuz"), std::string::npos) << timeline.body;
}

// The recorder keeps its timelines in the data directory: a machine's steps survive a graceful
// restart and a kill -9 once written (within about a second), and the steps after a restart
// join the same timeline.
TEST_F(ServeHttpBoot, TimelinesSurviveRestartsAndKills) {
  LabServe lab("", /*coordinator=*/true);
  ASSERT_FALSE(lab.api_url().empty());
  const std::string mac = "52:54:00:c0:ff:01";
  std::string token = read_file(lab.data_dir() / "operator.token");
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back())))
    token.pop_back();
  const std::vector<std::string> auth = {"--cacert", (lab.data_dir() / "ca.pem").string(), "-H",
                                         "Authorization: Bearer " + token};
  auto timeline = [&] {
    return curl(lab.api_url() + "/v1/machines/" + mac + "/timeline", auth).body;
  };
  auto count = [](const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
      ++n;
    return n;
  };
  std::vector<std::string> put = auth;
  put.insert(put.end(), {"-X", "PUT", "-H", "Content-Type: application/json", "--data",
                         R"({"ip":"127.0.0.1"})"});
  ASSERT_EQ(curl(lab.api_url() + "/v1/machines/" + mac, put).status, 200);
  ASSERT_EQ(curl(lab.url("/boot/" + mac + ".ipxe")).status, 200);
  EXPECT_EQ(count(timeline(), "\"script-render\""), 1U);

  lab.restart();  // SIGTERM: whatever is pending is written before the exit
  EXPECT_EQ(count(timeline(), "\"script-render\""), 1U) << lab.output();
  EXPECT_NE(lab.output().find("restored_events=1"), std::string::npos) << lab.output();

  ASSERT_EQ(curl(lab.url("/boot/" + mac + ".ipxe")).status, 200);
  std::this_thread::sleep_for(2500ms);  // past the writer's one-second round
  lab.restart(/*kill=*/true);
  EXPECT_EQ(count(timeline(), "\"script-render\""), 2U) << "one timeline across restarts";
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
  // Bounded by time, generously: a sanitizer build on a loaded machine moves 5 GiB slowly.
  auto all = curl(u, {"--max-time", "300", "-o", "/dev/null", "-w", "%{size_download}\n"});
  EXPECT_EQ(all.status, 200) << all.error;
  const auto rss = rss_kib(lab.pid());
  EXPECT_GT(rss, 0u);
  EXPECT_LT(rss, 1024u * 1024u) << "lab serve holds " << rss << " KiB after a 5 GiB download";
}

TEST_F(ServeHttpBoot, ClientsHangingUpDuringALargeBodyDoNotStopTheServer) {
  LabServe lab;
  {
    std::ofstream out(lab.root() / "large.bin", std::ios::binary);
    const std::string chunk = file_bytes(1 << 20);
    for (int i = 0; i < 64; ++i)
      out << chunk;
  }
  for (int i = 0; i < 5; ++i) {
    // Reads a few bytes, then resets the connection while the server is still sending.
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(lab.port());
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    const std::string req = "GET /boot/large.bin HTTP/1.1\r\nHost: x\r\n\r\n";
    ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
    char buf[4096];
    ASSERT_GT(::recv(fd, buf, sizeof buf, 0), 0);
    linger reset{.l_onoff = 1, .l_linger = 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    ::close(fd);
  }
  // A curl that gives up half-way does the same.
  auto partial = curl(lab.url("/boot/large.bin"), {"--limit-rate", "1M", "--max-time", "1"});
  EXPECT_EQ(partial.status, 0);
  EXPECT_TRUE(lab.running()) << lab.output();
  EXPECT_EQ(curl(lab.url("/boot/large.bin"), {"-o", "/dev/null"}).status, 200);
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
      std::string("GET /boot/\0x HTTP/1.1\r\n\r\n", 25),  // NUL in the target
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
