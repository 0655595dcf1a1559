#pragma once

#include "shared/text/time.hpp"
// What operator commands print: aligned tables for people, JSON for scripts.

#include "bootstrap/lab/api_client.hpp"
#include "shared/cli/cli.hpp"

#include <boost/json/value.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lab::bootstrap::commands {

/// Columns padded to the widest cell; an empty cell prints "-".
class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void print() const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

/// What -o/--output asked for; the top-level command's option writes it (main.cpp).
shared::cli::Output& requested_output();
/// The document on stdout as JSON or YAML, as -o asked (JSON when it asked for a table).
void print_document(const boost::json::value& v);
using shared::text::format_time;  // "2026-11-23T10:00:00Z", or "-" for 0
/// A member of a JSON object as text ("" when absent): strings as is, numbers in decimal.
std::string text(const boost::json::value& object, std::string_view key);
/// A member as an integer (0 when absent or not an integer).
std::int64_t integer(const boost::json::value& object, std::string_view key);
/// {"k":"v",…} → "k=v,…".
std::string labels_text(const boost::json::value& object, std::string_view key);
/// ["a","b"] → "a,b".
std::string list_text(const boost::json::value& object, std::string_view key);

/// The body of one `lab <noun> <verb>`: talks to the coordinator and prints the outcome.
using VerbBody = std::function<Result<void>(ApiClient&, const ClientFlags&)>;
/// Adds `verb` to `noun`; when selected, connects with the noun's flags and runs `body`.
CLI::App* add_verb(CLI::App& noun, const std::string& verb, const std::string& description,
                   shared::cli::Action& action, const std::shared_ptr<ClientFlags>& flags,
                   VerbBody body);

}  // namespace lab::bootstrap::commands
