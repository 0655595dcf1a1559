#include "bootstrap/sshinstall/installer.hpp"

#include "shared/json/json.hpp"

#include <algorithm>
#include <regex>
#include <sstream>

namespace lab::bootstrap::sshinstall {

const boost::system::error_category& install_category() noexcept {
  static const ErrorCategory<InstallError> kCategory("lab.sshinstall",
                                                     [](InstallError e) noexcept -> const char* {
                                                       switch (e) {
                                                         case InstallError::bad_setting:
                                                           return "bad agent setting";
                                                         case InstallError::arch_mismatch:
                                                           return "architecture mismatch";
                                                         case InstallError::remote_failed:
                                                           return "remote command failed";
                                                         case InstallError::join_refused:
                                                           return "labd join failed";
                                                         case InstallError::not_confirmed:
                                                           return "node not confirmed";
                                                         case InstallError::coordinator_failed:
                                                           return "coordinator request failed";
                                                         case InstallError::bad_upload_dir:
                                                           return "no upload directory";
                                                       }
                                                       return "install error";
                                                     });
  return kCategory;
}

namespace {

using rollout::Attempt;
using rollout::Status;

// Runs `labd run` again and again on hosts without systemd, backing off up to a minute. @LABD@
// is the agent's path: kAgentPath, or kPackagedAgentPath when the package installed it.
constexpr const char* kSupervisor = R"(#!/bin/sh
# Keeps labd running on a host without systemd (installed by lab bootstrap ssh).
mkdir -p /run/lab
echo $$ > /run/lab/labd-supervise.pid
child=
trap '[ -n "$child" ] && kill "$child" 2>/dev/null; exit 0' TERM INT
delay=1
while :; do
  @LABD@ run >>/var/log/labd.log 2>&1 &
  child=$!
  wait "$child"
  # 78 (EX_CONFIG): the node has not joined; restarting cannot fix that.
  [ $? -eq 78 ] && exit 78
  sleep "$delay"
  [ "$delay" -lt 60 ] && delay=$((delay * 2))
done
)";

constexpr const char* kUnit = R"([Unit]
Description=lab node agent
Documentation=man:labd(8)
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
ExecStart=/usr/local/bin/labd run
Restart=always
RestartSec=2
# 78 (EX_CONFIG): the node has not joined; restarting cannot fix that.
RestartPreventExitStatus=78

[Install]
WantedBy=multi-user.target
)";

// Prints: arch, "os version", init system, hostname, then the status JSON (may be empty) of the
// labd installed before, by the package or by an earlier run of this installer.
constexpr const char* kDetect =
    "uname -m; (. /etc/os-release 2>/dev/null; echo \"${ID:-unknown} ${VERSION_ID:-}\"); "
    "if [ -d /run/systemd/system ]; then echo systemd; else echo none; fi; hostname; "
    "for labd in /usr/bin/labd /usr/local/bin/labd; do if [ -x $labd ]; then "
    "$labd status --output json 2>/dev/null | tr -d '\\n'; break; fi; done; echo";

// Installs the uploaded package with apt, which takes its dependencies from what the host's
// sources offer (dpkg -i would leave it half-configured when one is missing); dpkg where there is
// no apt. An edited /etc/lab/labd.toml is kept; the installer writes its own settings next.
constexpr const char* kInstallPackage =
    "export DEBIAN_FRONTEND=noninteractive; if command -v apt-get >/dev/null; then "
    "apt-get install -y -q -o Dpkg::Options::=--force-confdef "
    "-o Dpkg::Options::=--force-confold @DEB@; else dpkg -i --force-confold @DEB@; fi";

// The package's own maintainer scripts undo it: purge stops the service, removes the unit, the
// configuration and the state.
constexpr const char* kRemovePackage =
    "if dpkg-query -W -f='${Status}' labd 2>/dev/null | grep -q ' installed'; then "
    "[ -d /run/systemd/system ] && systemctl disable --now labd.service 2>/dev/null; "
    "DEBIAN_FRONTEND=noninteractive dpkg --purge labd >/dev/null; fi; ";

constexpr const char* kRemoveAgent =
    "if [ -d /run/systemd/system ]; then systemctl disable --now labd.service 2>/dev/null; "
    "rm -f /etc/systemd/system/labd.service; systemctl daemon-reload 2>/dev/null; fi; "
    "if [ -f /run/lab/labd-supervise.pid ]; then kill \"$(cat /run/lab/labd-supervise.pid)\" "
    "2>/dev/null; rm -f /run/lab/labd-supervise.pid; fi; "
    "rm -f /usr/local/bin/labd /usr/local/bin/labd.lab-new /usr/local/lib/lab/labd-supervise "
    "/etc/lab/labd.toml; rm -rf /var/lib/labd; true";

// Prints a new directory only root can enter. A fixed name in a world-writable /tmp would let any
// local user read what we upload, or plant a file or symlink there for root to write through.
constexpr const char* kMakeUploadDir = "mktemp -d \"${TMPDIR:-/tmp}/lab-install.XXXXXXXXXX\"";

struct Host {
  std::string arch;
  std::string os;
  bool systemd = false;
  std::string hostname;
  std::string node_id;  // from a previous join, if labd reports one
};

Host parse_detect(const std::string& out) {
  Host h;
  std::istringstream in(out);
  std::string init;
  std::getline(in, h.arch);
  std::getline(in, h.os);
  std::getline(in, init);
  std::getline(in, h.hostname);
  std::string status;
  std::getline(in, status);
  h.systemd = init == "systemd";
  if (auto o = shared::json::parse_object(status); o) {
    if (auto id = shared::json::optional_string(*o, "node_id"); id && *id) {
      h.node_id = **id;
    }
  }
  return h;
}

std::string replace_all(std::string text, std::string_view marker, const std::string& with) {
  for (auto at = text.find(marker); at != std::string::npos; at = text.find(marker, at)) {
    text.replace(at, marker.size(), with);
    at += with.size();
  }
  return text;
}

// A here-document writing `content` to `path` with `mode`; content never holds the marker.
std::string write_file_command(const std::string& path, const std::string& content,
                               const char* mode) {
  return "mkdir -p \"$(dirname " + path + ")\" && cat > " + path + ".lab-new <<'LAB_EOF'\n" +
         content + "LAB_EOF\nchmod " + mode + " " + path + ".lab-new && mv -f " + path +
         ".lab-new " + path;
}

Result<std::string> agent_config_toml(const std::map<std::string, std::string>& config) {
  static const std::regex kKey("[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*");
  static const std::regex kRaw("true|false|-?[0-9]+|\\[[0-9, ]*\\]");
  static const std::regex kString("[A-Za-z0-9_.:/@=,+ -]*");
  std::string out = "# Written by lab bootstrap ssh.\n";
  for (const auto& [key, value] : config) {
    if (!std::regex_match(key, kKey)) {
      return Error(InstallError::bad_setting, "agent setting '" + key + "' is not a valid key");
    }
    if (std::regex_match(value, kRaw)) {
      out.append(key).append(" = ").append(value).append("\n");
    } else if (std::regex_match(value, kString)) {
      out.append(key).append(" = \"").append(value).append("\"\n");
    } else {
      std::string detail = "agent setting " + key;
      detail.append(" has characters that are not allowed: '").append(value).append("'");
      return Error(InstallError::bad_setting, std::move(detail));
    }
  }
  return out;
}

// mktemp's output, checked before it goes into a command line: an absolute path of plain
// characters, in a directory named as we asked.
Result<std::string> upload_dir_of(const std::string& out) {
  static const std::regex kPath("(/[A-Za-z0-9._-]+)*/lab-install\\.[A-Za-z0-9]+");
  std::string dir = out.substr(0, out.find('\n'));
  if (!std::regex_match(dir, kPath) || dir.find("/../") != std::string::npos) {
    return Error(InstallError::bad_upload_dir, "mktemp -d printed '" + dir + "'");
  }
  return dir;
}

// The line of a failed command's output that says what went wrong: the first that mentions an
// error or a failure (apt and systemctl print progress and notices before it), else the last.
std::string error_line(const ssh::CommandResult& r) {
  std::istringstream in(r.err.empty() ? r.out : r.err);
  std::string line;
  std::string last;
  while (std::getline(in, line)) {
    if (line.empty()) {
      continue;
    }
    std::string lower = line;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower.find("error") != std::string::npos || lower.find("fail") != std::string::npos) {
      return line;
    }
    last = line;
  }
  return last.empty() ? "exit status " + std::to_string(r.exit_status) : last;
}

class Install {
 public:
  Install(const std::string& target, const InstallOptions& options, Enroller& enroller)
      : target_text_(target), options_(options), enroller_(enroller) {}

  Attempt run() {
    auto target = ssh::parse_target(target_text_);
    if (!target) {
      return fail("connect", target.error());
    }
    target_ = *target;
    auto session = ssh::Session::open(target_, options_.connect);
    if (!session) {
      return fail("connect", session.error());
    }
    session_ = std::move(*session);

    auto detected = remote("detect", kDetect);
    if (!detected) {
      return fail("detect", detected.error());
    }
    host_ = parse_detect(detected->out);
    if (host_.arch != options_.agent_arch) {
      return fail("detect", Error(InstallError::arch_mismatch,
                                  "host runs " + host_.arch + ", the agent binary is built for " +
                                      options_.agent_arch));
    }
    if (!host_.node_id.empty()) {
      auto active = enroller_.node_active(host_.node_id);
      if (!active) {
        return fail("detect", active.error());
      }
      if (*active) {
        Attempt a;
        a.status = Status::skipped;
        a.step = "detect";
        a.node_id = host_.node_id;
        a.message = "already joined as " + host_.node_id;
        return a;
      }
    }
    packaged_ = !options_.package.empty() && host_.os.starts_with("debian");
    auto config = agent_config_toml(options_.agent_config);
    if (!config) {
      return fail("configure", config.error());
    }

    // From here on a failure rolls the host back.
    if (auto r = upload(); !r) {
      return rollback("upload", r.error());
    }
    if (auto r = check(remote("configure", write_file_command(kConfigPath, *config, "0644"))); !r) {
      return rollback("configure", r.error());
    }
    if (auto r = install_service(); !r) {
      return rollback("service", r.error());
    }
    auto minted = enroller_.mint(host_.hostname, options_.labels);
    if (!minted) {
      return rollback("token", minted.error());
    }
    token_id_ = minted->token_id;
    // On stdin: a command line is readable by every user of the host while it runs.
    const char* verb = host_.node_id.empty() ? "join" : "rejoin";
    auto joined = remote("join", agent_path() + " " + verb + " -", options_.join_timeout,
                         minted->join_string + "\n");
    if (!joined) {
      return rollback("join", joined.error());
    }
    if (joined->exit_status != 0) {
      return rollback("join",
                      Error(InstallError::join_refused, "labd join: " + error_line(*joined)));
    }
    if (auto r = start_service(); !r) {
      return rollback("start", r.error());
    }
    auto node = enroller_.token_node(token_id_);
    if (!node) {
      return rollback("confirm", node.error());
    }
    node_id_ = *node;
    if (node_id_.empty()) {
      return rollback("confirm", Error(InstallError::not_confirmed,
                                       "the coordinator has no node for this host's token"));
    }
    auto active = enroller_.node_active(node_id_);
    if (!active || !*active) {
      return rollback("confirm", active ? Error(InstallError::not_confirmed,
                                                "node " + node_id_ + " is not active")
                                        : active.error());
    }
    Attempt a;
    a.status = Status::joined;
    a.step = "confirm";
    a.node_id = node_id_;
    a.message = "joined as " + node_id_;
    return a;
  }

 private:
  Result<ssh::CommandResult> remote(const char* /*step*/, const std::string& command,
                                    std::chrono::seconds timeout = std::chrono::seconds(120),
                                    std::string_view input = {}) {
    return session_->run(command, timeout, input);
  }

  static Result<void> check(Result<ssh::CommandResult> r) {
    if (!r) {
      return r.error();
    }
    if (r->exit_status != 0) {
      return Error(InstallError::remote_failed, error_line(*r));
    }
    return {};
  }

  // Everything goes up into a fresh private directory (kMakeUploadDir), with exclusive creation,
  // and is installed from there; the directory is removed right after.
  Result<void> upload() {
    touched_ = true;
    auto made = remote("upload", kMakeUploadDir);
    if (!made) {
      return made.error();
    }
    if (made->exit_status != 0) {
      return Error(InstallError::remote_failed, "mktemp -d: " + error_line(*made));
    }
    LAB_TRY_ASSIGN(upload_dir_, upload_dir_of(made->out));
    if (packaged_) {
      const std::string deb = upload_dir_ + "/labd.deb";
      LAB_TRY(session_->upload(options_.package, deb, 0600));
      LAB_TRY(check(
          remote("upload", replace_all(kInstallPackage, "@DEB@", deb), std::chrono::seconds(600))));
    } else {
      const std::string agent = upload_dir_ + "/labd";
      const std::string next = std::string(kAgentPath) + ".lab-new";
      LAB_TRY(check(remote("upload", "mkdir -p /usr/local/bin /usr/local/lib/lab /etc/lab")));
      LAB_TRY(session_->upload(options_.agent, agent, 0700));
      // Copied beside the target, then renamed over it: a rename is atomic and leaves a running
      // labd its inode, which a move from another file system (/tmp) would not.
      LAB_TRY(check(remote("upload", "cp " + agent + " " + next + " && chmod 0755 " + next +
                                         " && mv -f " + next + " " + kAgentPath)));
    }
    LAB_TRY(check(remote("upload", "rm -rf " + upload_dir_)));
    upload_dir_.clear();
    return {};
  }

  // The package brings its own unit (hardened, with the watchdog); the binary alone gets kUnit.
  Result<void> install_service() {
    if (host_.systemd) {
      return check(remote("service", packaged_ ? std::string("systemctl daemon-reload")
                                               : write_file_command(kUnitPath, kUnit, "0644") +
                                                     " && systemctl daemon-reload"));
    }
    return check(remote(
        "service", write_file_command(kSupervisorPath,
                                      replace_all(kSupervisor, "@LABD@", agent_path()), "0755")));
  }

  std::string agent_path() const { return packaged_ ? kPackagedAgentPath : kAgentPath; }

  Result<void> start_service() {
    if (host_.systemd) {
      return check(remote("start", "systemctl enable --now labd.service"));
    }
    return check(remote(
        "start", std::string("setsid sh ") + kSupervisorPath + " </dev/null >/dev/null 2>&1 &"));
  }

  Attempt fail(const char* step, const Error& error) {
    Attempt a;
    a.status = Status::failed;
    a.retryable = ssh::is_connection_error(error);
    a.step = step;
    a.message = error.message();
    return a;
  }

  // Undoes what was done, on the host (if it still answers) and on the coordinator.
  Attempt rollback(const char* step, const Error& error) {
    Attempt a = fail(step, error);
    std::string undone;
    if (touched_) {
      if (ssh::is_connection_error(error)) {
        auto options = options_.connect;
        options.connect_timeout = std::chrono::seconds(5);
        auto fresh = ssh::Session::open(target_, options);
        session_ = fresh ? std::move(*fresh) : nullptr;
      }
      const std::string remove = (upload_dir_.empty() ? "" : "rm -rf " + upload_dir_ + "; ") +
                                 (packaged_ ? kRemovePackage : "") + kRemoveAgent;
      auto removed = session_ ? check(session_->run(remove, std::chrono::seconds(60)))
                              : Result<void>(Error(ssh::SshError::connect_failed));
      undone += removed ? "agent removed" : "agent NOT removed (host unreachable)";
    }
    if (!token_id_.empty()) {
      if (auto node = enroller_.token_node(token_id_); node && !node->empty()) {
        node_id_ = *node;
      }
      auto revoked = enroller_.revoke_token(token_id_);
      undone += std::string(undone.empty() ? "" : ", ") +
                (revoked ? "token revoked" : "token NOT revoked: " + revoked.error().message());
    }
    if (!node_id_.empty()) {
      auto revoked = enroller_.revoke_node(node_id_);
      undone += revoked ? ", node " + node_id_ + " revoked" : ", node NOT revoked";
    }
    if (!undone.empty()) {
      a.message += " (rolled back: " + undone + ")";
    }
    return a;
  }

  std::string target_text_;
  const InstallOptions& options_;
  Enroller& enroller_;
  ssh::Target target_;
  std::unique_ptr<ssh::Session> session_;
  Host host_;
  bool touched_ = false;
  bool packaged_ = false;   // labd comes from options_.package, installed with apt
  std::string upload_dir_;  // on the host, until removed
  std::string token_id_;
  std::string node_id_;
};

}  // namespace

rollout::Attempt install(const std::string& target, const InstallOptions& options,
                         Enroller& enroller) {
  return Install(target, options, enroller).run();
}

}  // namespace lab::bootstrap::sshinstall
