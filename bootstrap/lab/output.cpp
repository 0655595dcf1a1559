#include "bootstrap/lab/output.hpp"

#include "shared/json/json.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <ctime>

namespace lab::bootstrap::commands {

void Table::print() const {
  std::vector<std::size_t> width(headers_.size());
  for (std::size_t i = 0; i < headers_.size(); ++i)
    width[i] = headers_[i].size();
  for (const auto& row : rows_) {
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], std::max<std::size_t>(row[i].size(), 1));
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (std::size_t i = 0; i < width.size(); ++i) {
      std::string cell = i < cells.size() ? cells[i] : "";
      if (cell.empty())
        cell = "-";
      if (i + 1 < width.size())
        cell.resize(width[i] + 2, ' ');
      out += cell;
    }
    fmt::print("{}\n", out);
  };
  line(headers_);
  for (const auto& row : rows_)
    line(row);
}

shared::cli::Output& requested_output() {
  static shared::cli::Output output = shared::cli::Output::text;
  return output;
}

bool ClientFlags::document() const {
  return shared::cli::is_document(requested_output());
}

bool ClientFlags::wide() const {
  return requested_output() == shared::cli::Output::wide;
}

void print_document(const boost::json::value& v) {
  const shared::cli::Output o = requested_output();
  shared::cli::print_document(v, shared::cli::is_document(o) ? o : shared::cli::Output::json);
}

std::string text(const boost::json::value& object, std::string_view key) {
  const auto* o = object.if_object();
  if (o == nullptr)
    return "";
  const auto* v = o->if_contains(key);
  if (v == nullptr || v->is_null())
    return "";
  if (v->is_string())
    return std::string(v->get_string());
  if (v->is_bool())
    return v->get_bool() ? "true" : "false";
  return shared::json::to_string(*v);
}

std::int64_t integer(const boost::json::value& object, std::string_view key) {
  const auto* o = object.if_object();
  const auto* v = o == nullptr ? nullptr : o->if_contains(key);
  if (v == nullptr)
    return 0;
  if (v->is_int64())
    return v->get_int64();
  if (v->is_uint64())
    return static_cast<std::int64_t>(v->get_uint64());
  return 0;
}

std::string labels_text(const boost::json::value& object, std::string_view key) {
  std::string out;
  const auto* o = object.if_object();
  const auto* v = o == nullptr ? nullptr : o->if_contains(key);
  if (v == nullptr || !v->is_object())
    return out;
  for (const auto& [k, value] : v->get_object()) {
    if (!out.empty())
      out += ',';
    out += std::string(k) + "=" + (value.is_string() ? std::string(value.get_string()) : "");
  }
  return out;
}

std::string list_text(const boost::json::value& object, std::string_view key) {
  std::string out;
  const auto* o = object.if_object();
  const auto* v = o == nullptr ? nullptr : o->if_contains(key);
  if (v == nullptr || !v->is_array())
    return out;
  for (const auto& item : v->get_array()) {
    if (!out.empty())
      out += ',';
    out += item.is_string() ? std::string(item.get_string()) : shared::json::to_string(item);
  }
  return out;
}

CLI::App* add_verb(CLI::App& noun, const std::string& verb, const std::string& description,
                   shared::cli::Action& action, const std::shared_ptr<ClientFlags>& flags,
                   VerbBody body) {
  CLI::App* cmd = noun.add_subcommand(verb, description);
  cmd->callback([&action, flags, body = std::move(body)] {
    action = [flags, body]() -> int {
      auto client = ApiClient::connect(*flags);
      if (!client)
        return fail(client.error());
      if (auto r = body(*client, *flags); !r)
        return fail(r.error());
      return shared::cli::kExitOk;
    };
  });
  return cmd;
}

}  // namespace lab::bootstrap::commands
