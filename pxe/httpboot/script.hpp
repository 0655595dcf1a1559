#pragma once

#include "shared/errors/error.hpp"
#include "shared/labels/label.hpp"
#include "shared/labels/selector.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lab::pxe::httpboot {

/// A boot profile as configured ([[httpboot.profiles]]). `kernel` and `initrd` are paths under
/// the boot file root ("agent/vmlinuz", served at /boot/agent/vmlinuz) or absolute URLs.
/// kernel, initrd and cmdline may use the placeholders {token}, {join}, {mac} and {server}.
struct ProfileSpec {
  std::string name;
  std::string selector;  // label selector; empty matches every known machine
  std::string kernel;
  std::string initrd;  // optional
  std::string cmdline;
};

struct Profile {
  ProfileSpec spec;
  shared::labels::Selector selector;
};

/// The name of the profile unknown machines boot (and known machines no other profile matches).
inline constexpr std::string_view kDiscoveryProfile = "discovery";

/// Profiles in configuration order.
class ProfileSet {
 public:
  /// Validates every profile: name and kernel present, names unique, selectors parse,
  /// placeholders known. Errors name the profile.
  static Result<ProfileSet> create(std::vector<ProfileSpec> specs);

  /// For a known machine (`labels` set) the first profile other than "discovery" whose
  /// selector matches; otherwise, and for unknown machines, "discovery". nullptr when that
  /// is not configured either.
  [[nodiscard]] const Profile* select(const shared::labels::LabelSet* labels) const;
  [[nodiscard]] const std::vector<Profile>& profiles() const noexcept { return profiles_; }

 private:
  std::vector<Profile> profiles_;
};

/// What a script is rendered for.
struct ScriptContext {
  std::string mac;     // canonical "52:54:00:12:34:56"
  std::string server;  // base URL of this server: "http://10.0.0.1:8080"
  std::string token;   // one-time boot token; empty without a registry
  std::string join;    // join string carrying it; empty without a registry
  /// Shown on the machine's console before booting ("echo" line); empty for none. Says why a
  /// script carries no token, for whoever watches the console.
  std::string notice;
};

/// Where everything is served: <server>/boot/<path>. One prefix for scripts and files, because
/// UEFI HTTP boot clients fetch the iPXE binary from the directory of the script URL the DHCP
/// server hands out (http://<server>:8080/boot/).
inline constexpr std::string_view kBootPrefix = "/boot/";
/// The script the DHCP server sends every iPXE client.
inline constexpr std::string_view kGenericScriptPath = "/boot/boot.ipxe";

/// Replaces {token}, {join}, {mac} and {server}. Fails on an unknown placeholder or when a
/// substituted value holds a line break or NUL (it would inject iPXE commands).
Result<std::string> expand(std::string_view text, const ScriptContext& ctx);

/// True when the profile's kernel, initrd or cmdline uses {token} or {join}: it cannot be
/// rendered without a boot token.
bool needs_token(const Profile& profile);

/// The machine's iPXE script:
///   #!ipxe
///   kernel <url> initrd=<initrd file name> <cmdline> lab.join=<join string>
///   initrd <url>
///   boot
/// `initrd=<name>` is there because Debian's iPXE under UEFI hands the initrd to the kernel
/// only when the command line names it. lab.join is left out without a token, and when the
/// profile's cmdline already sets it. Fails with token_required when the profile uses {token}
/// or {join} and the context has no token.
Result<std::string> render_script(const Profile& profile, const ScriptContext& ctx);

/// The script every iPXE client fetches first (kGenericScriptPath): chains to
/// /boot/<its MAC>.ipxe, and on failure waits and starts over.
std::string generic_script(std::string_view server);

/// The MAC in "/boot/<mac>.ipxe": colon, hyphen or bare hex, any case (iPXE expands
/// ${netX/mac} with colons). Returns it canonical, or bad_script_path.
Result<std::string> parse_script_path(std::string_view path);

}  // namespace lab::pxe::httpboot
