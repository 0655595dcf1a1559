#pragma once
// The lab.* parameters of the agent OS's kernel command line, as the appliance's iPXE script
// puts them there. Pure: no files, no clock.

#include "shared/errors/error.hpp"
#include "shared/protocol/protocol.hpp"

#include <string>
#include <string_view>

namespace lab::agent::boot {

enum class BootError {
  cmdline_unreadable = 1,  // the command line file cannot be read or is too long
  unknown_parameter,       // a lab.* parameter this agent does not know; detail names them
  missing_join,            // no lab.join on the command line
  bad_join,                // lab.join is not a join string
  bad_mode,                // lab.mode is not a mode this agent runs
  bad_mac,                 // lab.mac is not a MAC address
  bad_server,              // lab.server is not an http(s) URL
  duplicate_parameter,     // a lab.* parameter given twice with different values
  no_mac,                  // no lab.mac and no network interface with a MAC
  already_joined,          // the data directory holds a node of another coordinator
  waiting_failed,          // the coordinator refused this node while it waited for the operator
  report_failed,           // the ready report did not reach the coordinator
  progress_refused,        // the HTTP boot server answered a progress report with an error
};
const boost::system::error_category& boot_category() noexcept;
inline boost::system::error_code make_error_code(BootError e) noexcept {
  return {static_cast<int>(e), boot_category()};
}

/// What `labd boot` is asked to do.
enum class Mode {
  discovery,  // join; when the coordinator does not know the machine, wait for the operator
};

/// The lab.* parameters.
struct BootParams {
  std::string join_text;              // lab.join verbatim (a "lab1:…" join string)
  shared::protocol::JoinString join;  // lab.join parsed
  Mode mode = Mode::discovery;        // lab.mode (default discovery)
  std::string mac;                    // lab.mac, canonical "52:54:00:12:34:56"; may be empty
  std::string server;                 // lab.server, "http://10.0.0.1:8080"; may be empty
};

/// The longest command line read (the kernel's own limit is at most 4 KiB on x86 and 2 KiB on
/// arm64; anything much longer is not a kernel command line).
inline constexpr std::size_t kMaxCmdline = std::size_t{16} * 1024;

/// Parses a kernel command line ("console=ttyS0 lab.mode=discovery lab.join=lab1:…").
/// Parameters outside lab.* are ignored; double quotes around a value are removed as the kernel
/// does. Errors: unknown_parameter naming every unknown lab.* key, duplicate_parameter,
/// missing_join, bad_join, bad_mode, bad_mac, bad_server, cmdline_unreadable (too long).
Result<BootParams> parse_cmdline(std::string_view text);

/// Where to report a failure to, read leniently from a command line that may not parse
/// (lab.server and lab.mac when they are well formed; empty otherwise). Never fails.
struct ReportTarget {
  std::string server;
  std::string mac;
};
ReportTarget report_target(std::string_view text);

/// "52:54:00:12:34:56" from any of 52:54:00:12:34:56, 52-54-00-12-34-56, 525400123456 (any
/// case); empty when it is not a MAC.
std::string canonical_mac(std::string_view text);

}  // namespace lab::agent::boot

template <>
struct boost::system::is_error_code_enum<lab::agent::boot::BootError> : std::true_type {};
