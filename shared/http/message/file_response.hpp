#pragma once

#include "shared/http/message/message.hpp"

#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>

namespace lab::shared::http {

/// What a conditional or partial GET needs to know about a file.
struct FileInfo {
  std::uint64_t size = 0;
  std::int64_t mtime_sec = 0;
  std::int64_t mtime_nsec = 0;
};

/// A strong validator from size and modification time: "\"<size hex>-<mtime hex>\"". It
/// changes whenever the file is replaced or rewritten (nginx derives its ETag the same way).
std::string make_etag(const FileInfo& info);

/// IMF-fixdate (RFC 9110 §5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT".
std::string http_date(std::time_t t);

/// One byte range [first, first + length) of a representation.
struct ByteRange {
  std::uint64_t first = 0;
  std::uint64_t length = 0;
};

/// What a Range header asks of a representation of `size` bytes.
struct RangeRequest {
  enum class Kind {
    whole,          // no Range, a malformed one, another unit or several ranges: send it all
    partial,        // one satisfiable range: 206 with `range`
    unsatisfiable,  // one well-formed range past the end: 416
  };
  Kind kind = Kind::whole;
  ByteRange range;
};

/// Parses one "bytes=first-last", "bytes=first-" or "bytes=-suffix" (RFC 9110 §14.1.2) against
/// `size`; a last past the end is clamped. Never fails: what it cannot use is `whole`, as RFC
/// 9110 lets a server ignore a Range header it does not support.
RangeRequest parse_range(std::string_view header, std::uint64_t size);

/// True when an If-None-Match field ("*", or a list of entity tags, weak or strong) matches
/// `etag` by the weak comparison RFC 9110 §13.1.2 prescribes.
bool etag_matches(std::string_view if_none_match, std::string_view etag);

/// The answer to GET or HEAD for a whole file: 304 when If-None-Match matches; 206 with
/// Content-Range for one satisfiable Range (unless an If-Range names another validator); 416
/// with "Content-Range: bytes */size" for an unsatisfiable one; else 200. Always carries ETag,
/// Last-Modified and Accept-Ranges. The body is a FileBody range of `file`: nothing is read.
Response file_response(const Request& request, std::shared_ptr<const File> file,
                       const FileInfo& info, std::string_view content_type);

}  // namespace lab::shared::http
