// The deploy's stream (images/deploy/stream) against `lab serve`'s HTTP boot server in a network
// namespace of the test's own: extraction with owners, links and modes; a transfer resumed
// where nftables cut it (no byte fetched twice); a server gone past the retry budget; 404s;
// archives that are not archives or try to write outside the target.
#include "images/deploy/error.hpp"
#include "images/deploy/stream.hpp"
#include "shared/crypto/encoding.hpp"
#include "shared/crypto/hash.hpp"
#include "tests/support/netns.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

namespace lab::images::deploy {
namespace {

namespace fs = std::filesystem;
using namespace lab::tests;

constexpr std::uint64_t kBlob = std::uint64_t{24} << 20;  // incompressible: the archive's bulk

std::string file_sha256(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return shared::crypto::hex_encode(shared::crypto::sha256(ss.str()));
}

class DeployStream : public ::testing::Test {
 protected:
  void SetUp() override {
    LAB_REQUIRE_ROOT();
    LAB_REQUIRE_PROGRAM("nft");
    LAB_REQUIRE_PROGRAM("zstd");
    ns_.emplace("ldep");
    fs::create_directories(images_);
    // The tree: a file, an executable, a symbolic and a hard link, another owner, a private
    // directory, and a large random file.
    const auto r =
        sh("set -e; t=" + tree_.string() +
           "; mkdir -p $t/etc $t/usr/bin $t/var $t/root; echo deployed > $t/etc/hostname;"
           " printf '#!/bin/sh\\n' > $t/usr/bin/tool; chmod 0755 $t/usr/bin/tool;"
           " ln $t/usr/bin/tool $t/usr/bin/tool2; ln -s usr/bin $t/bin;"
           " chown 1234:1234 $t/var; chmod 0700 $t/root;"
           " head -c " +
           std::to_string(kBlob) +
           " /dev/urandom > $t/var/blob;"
           " tar --numeric-owner -C $t -cf - . | zstd -q -T1 -3 > " +
           (images_ / "rootfs.tar.zst").string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    size_ = fs::file_size(images_ / "rootfs.tar.zst");
    sha_ = file_sha256(images_ / "rootfs.tar.zst");
    const auto cfg = dir_.write("lab.toml",
                                "[serve]\nshutdown_grace = \"3s\"\n"
                                "[coordinator]\nenabled = false\n[httpboot]\n"
                                "enabled = true\nlisten = \"127.0.0.1:0\"\nroot = \"" +
                                    root_.string() + "\"\n");
    serve_.emplace(ChildProcess::start(
        {.argv = {lab_binary(), "serve", "--data-dir", dir_ / "data", "--config", cfg.string()},
         .env = {},
         .netns = ns_->name(),
         .log = {}}));
    const std::regex listening(R"(component=httpboot msg=listening url=http://127\.0\.0\.1:(\d+))");
    std::smatch m;
    ASSERT_TRUE(wait_until(
        [&] {
          const auto out = serve_->output();
          if (out.find("msg=ready") == std::string::npos || !std::regex_search(out, m, listening))
            return false;
          port_ = std::stoi(m[1]);
          return true;
        },
        60s))
        << serve_->output();
  }

  void TearDown() override {
    if (!serve_)
      return;
    // Connections the rules left stalled would hold the server's shutdown to its grace.
    (void)run({"ip", "netns", "exec", ns_->name(), "nft", "flush", "ruleset"});
    EXPECT_EQ(serve_->stop(10s), 0) << serve_->output();
  }

  [[nodiscard]] std::string url(std::string_view name) const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/boot/images/test/" + std::string(name);
  }

  void nft(const std::string& rules) {
    const auto path = dir_.write("rules.nft", rules);
    const auto r = run({"ip", "netns", "exec", ns_->name(), "nft", "-f", path.string()});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }

  // Drops what the server sends once `condition` (an nftables match) holds.
  void drop_from_server(const std::string& condition) {
    nft("table inet labtest {\n chain out {\n  type filter hook output priority 0;\n  tcp sport " +
        std::to_string(port_) + " " + condition + " drop\n }\n}\n");
  }

  // Runs `f` on a thread inside the namespace; the threads it starts are inside too.
  template <class F>
  auto in_ns(F f) {
    std::optional<decltype(f())> result;
    std::thread t([&] {
      const int fd = ::open(("/run/netns/" + ns_->name()).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
        ADD_FAILURE() << "setns " << ns_->name();
        if (fd >= 0)
          ::close(fd);
        return;
      }
      ::close(fd);
      result.emplace(f());
    });
    t.join();
    return std::move(result).value();
  }

  Result<StreamResult> stream(const std::string& name, std::uint64_t size,
                              const StreamOptions& o = {}) {
    fs::create_directories(out_);
    return in_ns([&] { return stream_extract(url(name), size, out_, o); });
  }

  void expect_tree() {
    std::ifstream host(out_ / "etc/hostname");
    std::string line;
    std::getline(host, line);
    EXPECT_EQ(line, "deployed");
    EXPECT_EQ(fs::read_symlink(out_ / "bin"), "usr/bin");
    struct stat a {};
    struct stat b {};
    ASSERT_EQ(::lstat((out_ / "usr/bin/tool").c_str(), &a), 0);
    ASSERT_EQ(::lstat((out_ / "usr/bin/tool2").c_str(), &b), 0);
    EXPECT_EQ(a.st_ino, b.st_ino);
    EXPECT_EQ(a.st_mode & 07777, 0755U);
    ASSERT_EQ(::lstat((out_ / "var").c_str(), &a), 0);
    EXPECT_EQ(a.st_uid, 1234U);
    ASSERT_EQ(::lstat((out_ / "root").c_str(), &a), 0);
    EXPECT_EQ(a.st_mode & 07777, 0700U);
    EXPECT_EQ(file_sha256(out_ / "var/blob"), file_sha256(tree_ / "var/blob"));
  }

  TempDir dir_{"lab-deploy-stream"};
  fs::path root_ = dir_.path() / "root";
  fs::path images_ = root_ / "images/test";
  fs::path tree_ = dir_.path() / "tree";
  fs::path out_ = dir_.path() / "out";
  std::optional<NetNs> ns_;
  std::optional<ChildProcess> serve_;
  int port_ = 0;
  std::uint64_t size_ = 0;
  std::string sha_;
};

TEST_F(DeployStream, ExtractsEveryEntryAndHashesEveryByte) {
  auto r = stream("rootfs.tar.zst", size_);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->bytes, size_);
  EXPECT_EQ(r->fetched, size_);
  EXPECT_EQ(r->sha256, sha_);
  EXPECT_EQ(r->resumes, 0U);
  EXPECT_GE(r->entries, 9U);
  expect_tree();
}

TEST_F(DeployStream, ResumesWhereADroppedConnectionStopped) {
  // Every connection of the server goes silent after 6 MB: only resuming gets the whole image.
  drop_from_server("ct bytes > 6000000");
  StreamOptions o;
  o.stall_timeout = 1s;
  o.retry_budget = 30s;
  auto r = stream("rootfs.tar.zst", size_, o);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->sha256, sha_);
  EXPECT_GE(r->resumes, 3U);
  // Each attempt asked for the bytes from where the last stopped: none arrived twice.
  EXPECT_LE(r->fetched, size_ + std::uint64_t{64} * 1024);
  expect_tree();
}

TEST_F(DeployStream, FailsWhenTheServerStaysGonePastTheBudget) {
  // After 3 MB nothing the server sends arrives, on this connection or any new one.
  drop_from_server("quota over 3 mbytes");
  StreamOptions o;
  o.stall_timeout = 1s;
  o.retry_budget = 3s;
  o.connect_timeout = 1s;
  const auto started = std::chrono::steady_clock::now();
  auto r = stream("rootfs.tar.zst", size_, o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), DeployError::download_failed);
  EXPECT_NE(r.error().detail().find("retry budget"), std::string::npos) << r.error().detail();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 30s);
}

TEST_F(DeployStream, AMissingImageIsUnknown) {
  auto r = stream("nothing.tar.zst", 100);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), DeployError::unknown_image);
  auto m = in_ns([&] { return fetch(url("../nope/manifest.sig"), 1024, 5s); });
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error(), DeployError::unknown_image);
}

TEST_F(DeployStream, ASmallFileIsFetchedWithinItsBound) {
  std::ofstream(images_ / "manifest.sig") << "signed bytes";
  auto m = in_ns([&] { return fetch(url("manifest.sig"), 1024, 5s); });
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(*m, "signed bytes");
  auto big = in_ns([&] { return fetch(url("rootfs.tar.zst"), 1024, 5s); });
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error(), DeployError::download_failed);
}

TEST_F(DeployStream, MoreBytesThanTheManifestSaysIsAMismatch) {
  auto r = stream("rootfs.tar.zst", size_ - 1000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), DeployError::checksum_mismatch);
}

TEST_F(DeployStream, NotAnArchiveOrOneThatClimbsOutIsRefused) {
  ASSERT_EQ(sh("head -c 100000 /dev/urandom > " + (images_ / "noise").string()).exit_code, 0);
  auto noise = stream("noise", 100000);
  ASSERT_FALSE(noise);
  EXPECT_EQ(noise.error(), DeployError::archive_failed);

  // "../escape" must not land beside the target; "/abs" lands inside it.
  const auto escape = dir_.path() / "escape";
  const std::string abs_name = "/tmp/lab-deploy-abs-" + std::to_string(::getpid());
  const auto script = dir_.write("mk.py",
                                 "import io, sys, tarfile\n"
                                 "with tarfile.open(sys.argv[1], 'w') as t:\n"
                                 "    for name in (sys.argv[2], '../escape'):\n"
                                 "        data = b'x'\n"
                                 "        info = tarfile.TarInfo(name)\n"
                                 "        info.size = len(data)\n"
                                 "        t.addfile(info, io.BytesIO(data))\n");
  ASSERT_EQ(run({"python3", script.string(), (images_ / "climb.tar").string(), abs_name}).exit_code,
            0);
  auto climb = stream("climb.tar", fs::file_size(images_ / "climb.tar"));
  ASSERT_FALSE(climb);
  EXPECT_EQ(climb.error(), DeployError::archive_failed);
  EXPECT_FALSE(fs::exists(escape));
  EXPECT_FALSE(fs::exists(abs_name));
  EXPECT_TRUE(fs::exists(out_ / abs_name.substr(1)));
}

}  // namespace
}  // namespace lab::images::deploy
