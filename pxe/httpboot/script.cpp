#include "pxe/httpboot/script.hpp"

#include "pxe/httpboot/error.hpp"
#include "shared/net/mac.hpp"

#include <set>

namespace lab::pxe::httpboot {
namespace {

constexpr std::string_view kScriptPrefix = "/boot/";
constexpr std::string_view kScriptSuffix = ".ipxe";

bool is_url(std::string_view s) {
  return s.find("://") != std::string_view::npos;
}

std::string_view base_name(std::string_view path) {
  const auto q = path.find_first_of("?#");
  path = path.substr(0, q);
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// Checks a template's placeholders without values.
Result<void> check_placeholders(std::string_view text, std::string_view profile,
                                std::string_view field) {
  const ScriptContext probe{.mac = "", .server = "", .token = "", .join = "", .notice = ""};
  auto r = expand(text, probe);
  if (!r) {
    return Error(r.error().code(), "profile '" + std::string(profile) + "' " + std::string(field) +
                                       ": " + r.error().detail());
  }
  return {};
}

std::string file_url(std::string_view server, std::string_view path) {
  if (is_url(path))
    return std::string(path);
  while (!path.empty() && path.front() == '/')
    path.remove_prefix(1);
  return std::string(server) + std::string(kBootPrefix) + std::string(path);
}

}  // namespace

Result<std::string> expand(std::string_view text, const ScriptContext& ctx) {
  std::string out;
  out.reserve(text.size() + 64);
  auto append_value = [&out](std::string_view name, std::string_view v) -> Result<void> {
    if (v.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos)
      return Error(HttpBootError::unsafe_value, "value of {" + std::string(name) + "}");
    out += v;
    return {};
  };
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c != '{') {
      out += c;
      ++i;
      continue;
    }
    const auto close = text.find('}', i);
    if (close == std::string_view::npos)
      return Error(HttpBootError::unknown_placeholder,
                   "unclosed '{' at column " + std::to_string(i + 1));
    const std::string_view name = text.substr(i + 1, close - i - 1);
    if (name == "token") {
      LAB_TRY(append_value(name, ctx.token));
    } else if (name == "join") {
      LAB_TRY(append_value(name, ctx.join));
    } else if (name == "mac") {
      LAB_TRY(append_value(name, ctx.mac));
    } else if (name == "server") {
      LAB_TRY(append_value(name, ctx.server));
    } else {
      return Error(HttpBootError::unknown_placeholder,
                   "{" + std::string(name) + "} (known: {token}, {join}, {mac}, {server})");
    }
    i = close + 1;
  }
  if (out.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
    return Error(HttpBootError::unsafe_value, "line break in a profile field");
  return out;
}

Result<ProfileSet> ProfileSet::create(std::vector<ProfileSpec> specs) {
  ProfileSet set;
  std::set<std::string, std::less<>> names;
  for (auto& spec : specs) {
    if (spec.name.empty())
      return Error(HttpBootError::profile_invalid, "a boot profile has no name");
    if (spec.kernel.empty())
      return Error(HttpBootError::profile_invalid, "profile '" + spec.name + "' has no kernel");
    if (!names.insert(spec.name).second)
      return Error(HttpBootError::profile_duplicate, "profile '" + spec.name + "' given twice");
    auto selector = shared::labels::Selector::parse(spec.selector);
    if (!selector) {
      return Error(HttpBootError::profile_selector,
                   "profile '" + spec.name + "': " + selector.error().detail());
    }
    LAB_TRY(check_placeholders(spec.kernel, spec.name, "kernel"));
    LAB_TRY(check_placeholders(spec.initrd, spec.name, "initrd"));
    LAB_TRY(check_placeholders(spec.cmdline, spec.name, "cmdline"));
    set.profiles_.push_back(Profile{std::move(spec), std::move(*selector)});
  }
  return set;
}

const Profile* ProfileSet::select(const shared::labels::LabelSet* labels) const {
  const Profile* discovery = nullptr;
  for (const auto& p : profiles_) {
    if (p.spec.name == kDiscoveryProfile) {
      discovery = &p;
      continue;
    }
    if (labels != nullptr && p.selector.matches(*labels))
      return &p;
  }
  return discovery;
}

bool needs_token(const Profile& profile) {
  for (const std::string* field :
       {&profile.spec.kernel, &profile.spec.initrd, &profile.spec.cmdline}) {
    if (field->find("{token}") != std::string::npos || field->find("{join}") != std::string::npos)
      return true;
  }
  return false;
}

Result<std::string> render_script(const Profile& profile, const ScriptContext& ctx) {
  if (ctx.token.empty() && needs_token(profile)) {
    return Error(HttpBootError::token_required,
                 "profile '" + profile.spec.name + "' uses {token} or {join}");
  }
  LAB_TRY_ASSIGN(const std::string kernel, expand(profile.spec.kernel, ctx));
  LAB_TRY_ASSIGN(const std::string initrd, expand(profile.spec.initrd, ctx));
  LAB_TRY_ASSIGN(const std::string cmdline, expand(profile.spec.cmdline, ctx));
  // The join string is a command-line word: it must not split or inject anything.
  for (const std::string* v : {&ctx.join, &ctx.mac, &ctx.server}) {
    if (v->find_first_of(std::string_view(" \t\r\n\0", 5)) != std::string::npos)
      return Error(HttpBootError::unsafe_value, "whitespace in a script value");
  }
  if (ctx.notice.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
    return Error(HttpBootError::unsafe_value, "line break in the notice");

  std::string out = "#!ipxe\n";
  out += "# lab boot profile " + profile.spec.name + " for " + ctx.mac + "\n";
  if (!ctx.notice.empty())
    out += "echo " + ctx.notice + "\n";
  out += "kernel " + file_url(ctx.server, kernel);
  if (!initrd.empty()) {
    out += " initrd=";
    out += base_name(initrd);
  }
  if (!cmdline.empty()) {
    out += ' ';
    out += cmdline;
  }
  if (!ctx.join.empty() && cmdline.find("lab.join=") == std::string::npos) {
    out += " lab.join=";
    out += ctx.join;
  }
  out += '\n';
  if (!initrd.empty())
    out += "initrd " + file_url(ctx.server, initrd) + "\n";
  out += "boot\n";
  return out;
}

std::string generic_script(std::string_view server) {
  // ${netX/mac} is the interface iPXE last opened, the one that got the DHCP answer, so a
  // machine booting from its second NIC asks for the MAC the DHCP server saw.
  return "#!ipxe\n"
         "chain " +
         std::string(server) +
         "/boot/${netX/mac}.ipxe || goto failed\n"
         "exit\n"
         ":failed\n"
         "echo lab: no boot script for ${netX/mac}, retrying in 10 s\n"
         "sleep 10\n"
         "chain " +
         std::string(server) + std::string(kGenericScriptPath) + "\n";
}

Result<std::string> parse_script_path(std::string_view path) {
  if (path.size() <= kScriptPrefix.size() + kScriptSuffix.size() ||
      path.substr(0, kScriptPrefix.size()) != kScriptPrefix ||
      path.substr(path.size() - kScriptSuffix.size()) != kScriptSuffix) {
    return Error(HttpBootError::bad_script_path, "expected /boot/<mac>.ipxe");
  }
  const std::string_view mac =
      path.substr(kScriptPrefix.size(), path.size() - kScriptPrefix.size() - kScriptSuffix.size());
  auto canonical = shared::net::normalize_mac(mac);
  if (!canonical)
    return Error(HttpBootError::bad_script_path, "not a MAC address");
  return std::move(*canonical);
}

}  // namespace lab::pxe::httpboot
