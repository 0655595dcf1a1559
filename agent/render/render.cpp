#include "agent/render/render.hpp"

#include "agent/files/atomic_file.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <sys/stat.h>

#include <cctype>
#include <set>
#include <system_error>

namespace lab::agent::render {
namespace {

namespace fs = std::filesystem;

bool valid_secret_name(std::string_view name) {
  if (name.empty() || name.size() > 253 || name.front() == '.')
    return false;
  for (char c : name) {
    const bool ok =
        std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.';
    if (!ok)
      return false;
  }
  return true;
}

Result<void> write(const fs::path& path, std::string_view content, mode_t mode) {
  if (auto r = files::write_atomic(path, content, mode); !r)
    return Error(RenderError::write_failed, r.error().message());
  return {};
}

// YAML double-quoted scalar: label keys and values are restricted, but quote anyway.
std::string yaml_quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  return out + '"';
}

}  // namespace

const boost::system::error_category& render_category() noexcept {
  static const ErrorCategory<RenderError> kCategory(
      "lab.render", [](RenderError e) noexcept -> const char* {
        switch (e) {
          case RenderError::write_failed:
            return "rendering a file failed";
          case RenderError::bad_secret_name:
            return "secret name unusable as a file name";
          case RenderError::secret_unopened:
            return "secret does not open";
        }
        return "render error";
      });
  return kCategory;
}

std::string env_name(std::string_view key) {
  std::string out = "LAB_LABEL_";
  for (char c : key) {
    const auto u = static_cast<unsigned char>(c);
    out += std::isalnum(u) != 0 ? static_cast<char>(std::toupper(u)) : '_';
  }
  return out;
}

std::string labels_json(const cache::View& view) {
  boost::json::object o;
  for (const auto& [k, v] : view.labels)
    o[k] = v;
  return boost::json::serialize(o) + "\n";
}

std::string env_file(const cache::View& view) {
  // Label keys and values are limited to [A-Za-z0-9._/-], so no value needs quoting.
  std::string out = fmt::format("LAB_NODE_ID={}\nLAB_REVISION={}\n", view.node_id, view.revision);
  for (const auto& [k, v] : view.labels)
    out += fmt::format("{}={}\n", env_name(k), v);
  return out;
}

std::string facts(const cache::View& view, bool yaml) {
  if (yaml) {
    std::string out = fmt::format("lab_revision: {}\nlab_labels:", view.revision);
    if (view.labels.empty())
      return out + " {}\n";
    out += '\n';
    for (const auto& [k, v] : view.labels)
      out += fmt::format("  {}: {}\n", yaml_quote(k), yaml_quote(v));
    return out;
  }
  boost::json::object labels;
  for (const auto& [k, v] : view.labels)
    labels[k] = v;
  boost::json::object o;
  o["lab_labels"] = std::move(labels);
  o["lab_revision"] = view.revision;
  return boost::json::serialize(o) + "\n";
}

Result<void> render(const Paths& paths, const cache::View& view,
                    const shared::crypto::X25519PrivateKey& key) {
  if (!paths.labels_json.empty())
    LAB_TRY(write(paths.labels_json, labels_json(view), 0644));
  if (!paths.env_file.empty())
    LAB_TRY(write(paths.env_file, env_file(view), 0644));
  if (!paths.secrets_dir.empty()) {
    std::error_code ec;
    fs::create_directories(paths.secrets_dir, ec);
    if (ec) {
      return Error(RenderError::write_failed,
                   fmt::format("create {}: {}", paths.secrets_dir.string(), ec.message()));
    }
    ::chmod(paths.secrets_dir.c_str(), 0700);
    std::set<std::string, std::less<>> wanted;
    for (const auto& [name, secret] : view.secrets) {
      if (!valid_secret_name(name)) {
        return Error(RenderError::bad_secret_name,
                     fmt::format("secret '{}' cannot be written as a file", name));
      }
      auto value = cache::open_secret(view, key, name);
      if (!value)
        return Error(RenderError::secret_unopened, value.error().message());
      LAB_TRY(write(paths.secrets_dir / name, shared::crypto::as_chars(*value), 0400));
      wanted.insert(name);
    }
    // Secrets no longer entitled disappear from disk too.
    for (fs::directory_iterator it(paths.secrets_dir, ec), end; !ec && it != end;
         it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (!name.starts_with(".") && !wanted.contains(name)) {
        if (auto r = files::remove_durable(it->path()); !r)
          return Error(RenderError::write_failed, r.error().message());
      }
    }
  }
  if (!paths.facts_file.empty()) {
    const auto ext = paths.facts_file.extension();
    LAB_TRY(write(paths.facts_file, facts(view, ext == ".yaml" || ext == ".yml"), 0644));
  }
  return {};
}

}  // namespace lab::agent::render
