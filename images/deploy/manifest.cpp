#include "images/deploy/manifest.hpp"

#include "images/deploy/error.hpp"
#include "shared/envelope/envelope.hpp"

#include <boost/json.hpp>

#include <algorithm>

namespace lab::images::deploy {
namespace {

Result<std::string> string_field(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_string() || v->get_string().empty())
    return Error(DeployError::bad_manifest, "no \"" + std::string(key) + "\" in the manifest");
  return std::string(v->get_string());
}

Result<std::uint64_t> size_field(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v != nullptr && v->is_uint64())
    return v->get_uint64();
  if (v != nullptr && v->is_int64() && v->get_int64() >= 0)
    return static_cast<std::uint64_t>(v->get_int64());
  return Error(DeployError::bad_manifest,
               "no \"" + std::string(key) + "\" size (a non-negative integer) in the manifest");
}

bool plain_name(std::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         std::none_of(name.begin(), name.end(),
                      [](char c) { return c == '/' || c == '\\' || c < 0x21 || c > 0x7e; });
}

bool hex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

Result<RootfsManifest> open_manifest(shared::crypto::ByteView envelope,
                                     const shared::crypto::Ed25519PublicKey& appliance) {
  auto opened = shared::envelope::open(envelope, appliance, "manifest");
  if (!opened) {
    return Error(DeployError::bad_manifest,
                 "manifest.sig is not signed by this appliance: " + opened.error().message());
  }
  const std::string_view text(reinterpret_cast<const char*>(opened->payload.data()),  // NOLINT
                              opened->payload.size());
  boost::system::error_code ec;
  const auto doc = boost::json::parse(text, ec);
  if (ec || !doc.is_object())
    return Error(DeployError::bad_manifest, "the signed manifest is not a JSON object");
  const auto& o = doc.get_object();
  LAB_TRY_ASSIGN(auto kind, string_field(o, "kind"));
  if (kind != "rootfs")
    return Error(DeployError::bad_manifest, "a manifest of kind \"" + kind + "\", not rootfs");
  RootfsManifest m;
  LAB_TRY_ASSIGN(m.name, string_field(o, "name"));
  LAB_TRY_ASSIGN(m.kernel_version, string_field(o, "kernel_version"));
  LAB_TRY_ASSIGN(m.architecture, string_field(o, "architecture"));
  LAB_TRY_ASSIGN(m.installed_size, size_field(o, "installed_size"));
  const auto* files = o.if_contains("files");
  if (files == nullptr || !files->is_array() || files->get_array().size() != 1 ||
      !files->get_array()[0].is_object()) {
    return Error(DeployError::bad_manifest, "the manifest must list exactly one file");
  }
  const auto& f = files->get_array()[0].get_object();
  LAB_TRY_ASSIGN(m.file, string_field(f, "name"));
  LAB_TRY_ASSIGN(m.size, size_field(f, "size"));
  LAB_TRY_ASSIGN(m.sha256, string_field(f, "sha256"));
  if (!plain_name(m.file))
    return Error(DeployError::bad_manifest, "the image file name \"" + m.file + "\" is a path");
  if (!hex64(m.sha256))
    return Error(DeployError::bad_manifest, "the image's sha256 is not 64 lower-case hex digits");
  return m;
}

}  // namespace lab::images::deploy
