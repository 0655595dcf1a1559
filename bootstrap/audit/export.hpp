#pragma once
// `lab audit export` files, JSON lines: the first line the signed head
// {"seq","hash","at","signature","key"}, then one line per row as GET /v1/audit returns it
// (seq, at, actor, address, action, subject, detail, hash), oldest first, up to the head's row.
// An export kept elsewhere is what shows a later rollback of the database to an older copy,
// which the signature alone cannot: that older copy's head was signed too.
#include "bootstrap/audit/chain.hpp"
#include "shared/errors/error.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

namespace lab::bootstrap::audit {

enum class ExportError {
  empty = 1,     // no head line
  not_json,      // a line that is not one JSON object; detail names the line
  head_field,    // the head line lacks a field, has a wrong type, or a key that is not Ed25519
  row_field,     // a row line lacks a field or has a wrong type
  live_invalid,  // a head or row from the coordinator lacks a field, or rows out of order
  write_failed,  // the output stream failed
};
const boost::system::error_category& export_category() noexcept;
inline boost::system::error_code make_error_code(ExportError e) noexcept {
  return {static_cast<int>(e), export_category()};
}

/// The first line of an export, and what GET /v1/audit/head returns.
struct HeadLine {
  SignedHead head;
  std::string key;  // base64url Ed25519 public key of the appliance that signed it
};
boost::json::object to_json(const HeadLine& line);
/// head_field naming the field when one is missing or of the wrong type.
Result<HeadLine> head_line_from_json(const boost::json::object& o);

/// One page of the live log: rows with seq > after, oldest first, at most `limit`, as
/// GET /v1/audit returns them.
using FetchRows = std::function<Result<boost::json::array>(std::int64_t after, std::size_t limit)>;

/// Writes the export of the live log whose head is `head` (the head line, as GET
/// /v1/audit/head returns it): that line, then rows 1 to head.seq fetched `page` at a time,
/// so the log never has to fit in one response. Rows appended meanwhile are left out. Returns
/// the number of rows written; live_invalid for a head or row that is not what the API
/// promises, write_failed when `out` fails, or the fetch's error.
Result<std::int64_t> write_export(std::ostream& out, const boost::json::object& head,
                                  const FetchRows& live, std::size_t page = 1000);

/// Checks an export on its own: its head names `appliance_key` and carries that key's
/// signature, and its rows chain, from row 1, up to exactly the row the head names. A check
/// that fails names the row and why; a file that is not an export is an ExportError whose
/// detail names the line.
Result<Check> check_export(std::istream& in, const shared::crypto::Ed25519PublicKey& appliance_key);

/// Checks that the live log still holds every row of the export unchanged (the export is a
/// prefix of it), reading both in step, the live log `page` rows at a time. The first row that
/// differs (naming the fields) or is missing from the live log fails the check.
Result<Check> compare_export(std::istream& in, const FetchRows& live, std::size_t page = 1000);

}  // namespace lab::bootstrap::audit

template <>
struct boost::system::is_error_code_enum<lab::bootstrap::audit::ExportError> : std::true_type {};
