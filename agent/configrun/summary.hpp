#pragma once
// The summary of the node's last OpenVox/Puppet agent run, which labd reports so an operator
// sees at a glance which nodes stopped converging. The agent rewrites last_run_summary.yaml
// after every run (Puppet::Transaction::Report#raw_summary): sections version, application,
// resources, time, changes and events. Only the numbers below are read; every other key is
// ignored, so newer agents that add keys keep working.

#include "shared/errors/error.hpp"

#include <boost/json/object.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace lab::agent::configrun {

enum class ConfigRunError {
  too_large = 1,       // input or file larger than kMaxBytes
  parser_init,         // libyaml could not allocate its parser
  syntax,              // libyaml's scanner or parser refused the text; detail has line, column
  alias,               // an alias (*x): refused, so no document can expand to more than it is
  too_deep,            // collections nested deeper than kMaxDepth
  too_many_scalars,    // more than kMaxScalars scalars
  several_documents,   // a second document in the stream
  complex_key,         // a mapping key that is a collection
  empty,               // no document at all (an empty file)
  not_a_mapping,       // the document is not a mapping
  duplicate_key,       // the same key twice in a section this reads
  wrong_type,          // a value of the wrong type; detail has the key path
  out_of_range,        // a number past what int64/double hold, or a sum of failures past it
  too_long,            // version.puppet longer than kMaxVersionLength
  missing_last_run,    // no time.last_run: without it the summary says nothing about when
  file_open,           // open(2) failed for a reason other than "does not exist"
  file_stat,           // fstat(2) failed on the open file
  not_a_regular_file,  // a directory, a FIFO, a device
  file_read,           // read(2) failed
};
const boost::system::error_category& configrun_category() noexcept;
inline boost::system::error_code make_error_code(ConfigRunError e) noexcept {
  return {static_cast<int>(e), configrun_category()};
}

/// Where OpenVox and Puppet (AIO packages, run as root) write the summary by default.
inline constexpr const char* kDefaultPath =
    "/opt/puppetlabs/puppet/cache/state/last_run_summary.yaml";

// Limits on what a parse may hold: a real summary is a few kB, two levels deep and under 100
// scalars, so these leave room for agents with many resource types yet bound the work and the
// memory a damaged or hostile file can cause.
inline constexpr std::size_t kMaxBytes = std::size_t{1} << 20;
inline constexpr std::size_t kMaxDepth = 16;
inline constexpr std::size_t kMaxScalars = 10'000;
// The version is reported upstream as is; a real one is "8.10.0".
inline constexpr std::size_t kMaxVersionLength = 64;

/// What labd reports of a run. Keys missing from the file (an agent run that failed before it
/// applied a catalog writes fewer of them) leave their field 0 or empty.
struct Summary {
  std::int64_t last_run = 0;        // time.last_run, unix seconds
  std::int64_t config_version = 0;  // version.config when numeric, else 0
  std::string agent_version;        // version.puppet ("8.10.0")
  std::int64_t failures = 0;    // resources.failed + resources.failed_to_restart + events.failure
  std::int64_t changes = 0;     // changes.total
  std::int64_t resources = 0;   // resources.total
  double duration_seconds = 0;  // time.total
};

/// Parses the YAML text with libyaml's parser. Errors: too_large past kMaxBytes; syntax naming
/// the line and column; alias, too_deep, too_many_scalars, several_documents, complex_key for
/// input past what a summary can be; empty, not_a_mapping for a document that is not a mapping;
/// missing_last_run without time.last_run; wrong_type, duplicate_key, out_of_range, too_long
/// naming the key path ("resources.failed: expected a number, found a mapping"). Unknown keys
/// are ignored; a null value counts as a missing key.
Result<Summary> parse_summary(std::string_view yaml);

/// Reads and parses the file (blocking; small). nullopt when it does not exist: the node has no
/// configuration management. An Error naming the path for anything else: file_open, file_stat,
/// not_a_regular_file, file_read, too_large, or any error of parse_summary.
Result<std::optional<Summary>> read_summary(const std::filesystem::path& path);

/// The JSON form labd reports:
/// {"last_run","config_version","agent_version","failures","changes","resources",
///  "duration_seconds"}.
boost::json::object to_json(const Summary& s);

}  // namespace lab::agent::configrun

template <>
struct boost::system::is_error_code_enum<lab::agent::configrun::ConfigRunError> : std::true_type {};
