// labd-deploy: writes a rootfs image onto this machine's disk (images/deploy). `labd boot` runs
// it in the agent OS and relays its steps; run by hand, it prints them as they happen. One JSON
// object per line on stdout: {"step": ..., "state": started|progress|done|failed, "detail": ...}.
// A program apart from labd: libcurl and libarchive load only where a deploy runs.
#include "images/deploy/deploy.hpp"
#include "shared/cli/cli.hpp"
#include "shared/crypto/encoding.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include <cstdio>

namespace {

namespace deploy = lab::images::deploy;
namespace cli = lab::shared::cli;
constexpr const char* kProgram = "labd-deploy";

struct Options {
  std::string image_url;
  std::string appliance_key;
  std::string disk;
  std::string target = "/run/lab-deploy/root";
  std::vector<std::string> carry;
  std::string cmdline = "console=tty0 console=ttyS0,115200n8";
  double stall_seconds = 15;
  double budget_seconds = 120;
};

int run(const Options& o) {
  deploy::Plan plan;
  plan.image_url = o.image_url;
  if (!plan.image_url.ends_with('/'))
    plan.image_url += '/';
  const auto trimmed = plan.image_url.substr(0, plan.image_url.size() - 1);
  plan.image = trimmed.substr(trimmed.rfind('/') + 1);
  auto raw = lab::shared::crypto::base64url_decode(o.appliance_key);
  auto key = raw ? lab::shared::crypto::Ed25519PublicKey::from_raw(*raw)
                 : lab::Result<lab::shared::crypto::Ed25519PublicKey>(raw.error());
  if (!key) {
    cli::print_error(kProgram, key.error(),
                     "--appliance-key is the appliance's Ed25519 public key, base64url");
    return cli::kExitUsage;
  }
  plan.appliance = *key;
  plan.disk = o.disk;
  plan.target = o.target;
  for (const auto& c : o.carry) {
    const auto colon = c.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == c.size() || c[colon + 1] != '/') {
      cli::print_error(kProgram, "--carry '" + c + "': expected SOURCE:/PATH/IN/THE/TREE");
      return cli::kExitUsage;
    }
    plan.carry.emplace_back(c.substr(0, colon), c.substr(colon + 1));
  }
  plan.kernel_cmdline = o.cmdline;
  plan.stream.stall_timeout = std::chrono::milliseconds(static_cast<long>(o.stall_seconds * 1000));
  plan.stream.retry_budget = std::chrono::milliseconds(static_cast<long>(o.budget_seconds * 1000));
  auto r = deploy::run(plan, [](const deploy::Step& s) {
    const boost::json::object line{{"step", s.name}, {"state", s.state}, {"detail", s.detail}};
    fmt::print("{}\n", boost::json::serialize(line));
    (void)std::fflush(stdout);  // read line by line while the deploy runs
  });
  return r ? cli::kExitOk : cli::kExitFailure;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Write a rootfs image onto this machine's disk: partition, format, stream and "
      "verify the signed image, carry the node's identity over, install GRUB"};
  app.name(kProgram);
  Options o;
  app.add_option("--image-url", o.image_url,
                 "the image's directory on the appliance: http://HOST:8080/boot/images/NAME/")
      ->required();
  app.add_option("--appliance-key", o.appliance_key,
                 "Ed25519 public key (base64url) that signed the image's manifest")
      ->required();
  app.add_option("--disk", o.disk,
                 "/dev/NAME or serial=SERIAL (default: the largest fixed, writable disk)");
  app.add_option("--target", o.target, "where the new root is mounted while it is written");
  app.add_option("--carry", o.carry,
                 "SOURCE:/PATH copies a file or directory into the new system (repeatable)");
  app.add_option("--cmdline", o.cmdline, "kernel command line of the installed system");
  app.add_option("--stall-timeout", o.stall_seconds,
                 "seconds without a byte before a transfer is resumed")
      ->check(CLI::Range(1.0, 3600.0));
  app.add_option("--retry-budget", o.budget_seconds,
                 "seconds without a byte, over every attempt, before the deploy fails")
      ->check(CLI::Range(1.0, 86400.0));
  cli::Action action = [&o] { return run(o); };
  return cli::run(app, argc, argv, action);
}
