#include "bootstrap/audit/export.hpp"

#include "shared/crypto/encoding.hpp"
#include "shared/json/json.hpp"

#include <boost/json/serialize.hpp>

#include <array>
#include <istream>
#include <optional>
#include <ostream>
#include <string_view>
#include <utility>

namespace lab::bootstrap::audit {
namespace {

namespace cr = shared::crypto;
namespace json = boost::json;
namespace sj = shared::json;

// The columns a row's hash covers, in the order the API and the export carry them.
constexpr std::array<std::string_view, 8> kRowFields = {"seq",    "at",      "actor",  "address",
                                                        "action", "subject", "detail", "hash"};

std::string where(std::size_t line) {
  return line == 0 ? std::string() : "line " + std::to_string(line) + ": ";
}

// A field of a line, or `code` with the line and the field in the detail.
template <class T>
Result<T> field(Result<T> r, ExportError code, std::size_t line) {
  if (!r)
    return Error(code, where(line) + r.error().detail());
  return r;
}

struct Row {
  std::int64_t seq = 0;
  std::string canonical;
  std::string hash;
};

// `line` 0 is a row from the coordinator rather than from a file.
Result<Row> parse_row(const json::object& o, ExportError code, std::size_t line) {
  Row r;
  LAB_TRY_ASSIGN(r.seq, field(sj::get_int(o, "seq"), code, line));
  LAB_TRY_ASSIGN(const std::int64_t at, field(sj::get_int(o, "at"), code, line));
  LAB_TRY_ASSIGN(const std::string actor, field(sj::get_string(o, "actor"), code, line));
  LAB_TRY_ASSIGN(const std::string address, field(sj::get_string(o, "address"), code, line));
  LAB_TRY_ASSIGN(const std::string action, field(sj::get_string(o, "action"), code, line));
  LAB_TRY_ASSIGN(const std::string subject, field(sj::get_string(o, "subject"), code, line));
  LAB_TRY_ASSIGN(const json::object* detail, field(sj::get_object(o, "detail"), code, line));
  LAB_TRY_ASSIGN(r.hash, field(sj::get_string(o, "hash"), code, line));
  // The coordinator stores the detail as the text serialize() made and the API parses it back;
  // serialising that again gives the same text, so the hash can be checked from the JSON.
  r.canonical = canonical_row(r.seq, at, actor, address, action, subject, json::serialize(*detail));
  return r;
}

// Lines of an export, numbered from 1.
class LineReader {
 public:
  explicit LineReader(std::istream& in) : in_(in) {}
  /// The next line as a JSON object; nullopt at the end of the file.
  Result<std::optional<json::object>> next() {
    std::string text;
    if (!std::getline(in_, text))
      return std::optional<json::object>();
    ++line_;
    auto o = sj::parse_object(text);
    if (!o)
      return Error(ExportError::not_json, where(line_) + o.error().detail());
    return std::optional<json::object>(std::move(*o));
  }
  [[nodiscard]] std::size_t line() const noexcept { return line_; }

 private:
  std::istream& in_;
  std::size_t line_ = 0;
};

Result<HeadLine> read_head(LineReader& lines) {
  LAB_TRY_ASSIGN(auto first, lines.next());
  if (!first)
    return Error(ExportError::empty, "no head line: not an audit export");
  auto head = head_line_from_json(*first);
  if (!head)
    return Error(ExportError::head_field, where(1) + head.error().detail());
  return head;
}

// The live log row after row, fetched a page at a time.
class LiveCursor {
 public:
  LiveCursor(const FetchRows& fetch, std::size_t page) : fetch_(fetch), page_(page) {}
  /// The next live row; nullptr once the live log has no more.
  Result<const json::object*> next() {
    if (index_ == rows_.size()) {
      // A short page is not the end: the server may clamp the limit. An empty one is.
      LAB_TRY_ASSIGN(rows_, fetch_(last_, page_));
      index_ = 0;
      if (rows_.empty())
        return nullptr;
    }
    const json::value& v = rows_[index_++];
    if (!v.is_object())
      return Error(ExportError::live_invalid, "a row of the live log is not an object");
    auto seq = field(sj::get_int(v.as_object(), "seq"), ExportError::live_invalid, 0);
    if (!seq)
      return seq.error();
    if (*seq <= last_) {
      return Error(ExportError::live_invalid, "the live log returned row " + std::to_string(*seq) +
                                                  " after row " + std::to_string(last_));
    }
    last_ = *seq;
    return &v.as_object();
  }
  /// The seq of the last row next() returned (0 before the first).
  [[nodiscard]] std::int64_t last() const noexcept { return last_; }

 private:
  const FetchRows& fetch_;
  std::size_t page_;
  json::array rows_;
  std::size_t index_ = 0;
  std::int64_t last_ = 0;
};

Check failed(std::int64_t seq, std::int64_t rows, std::string reason) {
  return {false, rows, seq, std::move(reason)};
}

}  // namespace

const boost::system::error_category& export_category() noexcept {
  static const ErrorCategory<ExportError> kCategory(
      "lab.audit.export", [](ExportError e) noexcept -> const char* {
        switch (e) {
          case ExportError::empty:
            return "empty audit export";
          case ExportError::not_json:
            return "audit export line is not a JSON object";
          case ExportError::head_field:
            return "invalid audit export head";
          case ExportError::row_field:
            return "invalid audit export row";
          case ExportError::live_invalid:
            return "unexpected audit data from the coordinator";
          case ExportError::write_failed:
            return "cannot write the audit export";
        }
        return "audit export error";
      });
  return kCategory;
}

json::object to_json(const HeadLine& line) {
  return {{"seq", line.head.seq},
          {"hash", line.head.hash},
          {"at", line.head.at},
          {"signature", line.head.signature},
          {"key", line.key}};
}

Result<HeadLine> head_line_from_json(const json::object& o) {
  HeadLine line;
  LAB_TRY_ASSIGN(line.head.seq, sj::get_int(o, "seq"));
  LAB_TRY_ASSIGN(line.head.hash, sj::get_string(o, "hash"));
  LAB_TRY_ASSIGN(line.head.at, sj::get_int(o, "at"));
  LAB_TRY_ASSIGN(line.head.signature, sj::get_string(o, "signature"));
  LAB_TRY_ASSIGN(line.key, sj::get_string(o, "key"));
  return line;
}

Result<std::int64_t> write_export(std::ostream& out, const json::object& head,
                                  const FetchRows& live, std::size_t page) {
  auto line = head_line_from_json(head);
  if (!line)
    return Error(ExportError::live_invalid, "the coordinator's head: " + line.error().detail());
  out << json::serialize(to_json(*line)) << '\n';
  LiveCursor cursor(live, page);
  std::int64_t written = 0;
  // Rows up to the head are immutable once committed, so paging after reading the head gives
  // exactly the rows it covers, however many are appended meanwhile.
  while (cursor.last() < line->head.seq) {
    LAB_TRY_ASSIGN(const json::object* row, cursor.next());
    if (row == nullptr || cursor.last() > line->head.seq)
      break;
    out << json::serialize(*row) << '\n';
    ++written;
  }
  out.flush();
  if (!out)
    return Error(ExportError::write_failed, "the output stream failed");
  return written;
}

Result<Check> check_export(std::istream& in, const cr::Ed25519PublicKey& appliance_key) {
  LineReader lines(in);
  LAB_TRY_ASSIGN(HeadLine head, read_head(lines));
  auto raw = cr::base64url_decode(head.key);
  if (!raw)
    return Error(ExportError::head_field, where(1) + "field 'key': not base64url");
  auto key = cr::Ed25519PublicKey::from_raw(*raw);
  if (!key)
    return Error(ExportError::head_field, where(1) + "field 'key': not an Ed25519 public key");
  if (key->raw() != appliance_key.raw()) {
    return failed(0, 0,
                  "the export's head was signed by key " + key->key_id() +
                      ", not by this appliance's key " + appliance_key.key_id());
  }
  ChainWalker walker;
  for (;;) {
    LAB_TRY_ASSIGN(auto o, lines.next());
    if (!o)
      break;
    LAB_TRY_ASSIGN(Row row, parse_row(*o, ExportError::row_field, lines.line()));
    if (!walker.add(row.seq, row.canonical, row.hash))
      return walker.check();
  }
  return walker.finish(head.head, appliance_key);
}

Result<Check> compare_export(std::istream& in, const FetchRows& live, std::size_t page) {
  LineReader lines(in);
  LAB_TRY(read_head(lines));
  LiveCursor cursor(live, page);
  std::int64_t rows = 0;
  for (;;) {
    LAB_TRY_ASSIGN(auto exported, lines.next());
    if (!exported)
      break;
    LAB_TRY_ASSIGN(const std::int64_t seq,
                   field(sj::get_int(*exported, "seq"), ExportError::row_field, lines.line()));
    auto name = [seq] { return "row " + std::to_string(seq); };
    LAB_TRY_ASSIGN(const json::object* current, cursor.next());
    if (current == nullptr) {
      return failed(seq, rows,
                    name() + " is missing from the live log, which ends at row " +
                        std::to_string(cursor.last()));
    }
    if (cursor.last() > seq)
      return failed(seq, rows, name() + " is missing from the live log");
    if (cursor.last() < seq) {
      return failed(
          cursor.last(), rows,
          "row " + std::to_string(cursor.last()) + " of the live log is not in the export");
    }
    std::string differ;
    for (const std::string_view f : kRowFields) {
      const json::value* a = exported->if_contains(f);
      const json::value* b = current->if_contains(f);
      if (a == nullptr || b == nullptr || *a != *b) {
        if (!differ.empty())
          differ += ", ";
        differ += f;
      }
    }
    if (!differ.empty())
      return failed(seq, rows, name() + " differs from the export: " + differ);
    ++rows;
  }
  return Check{true, rows, 0, {}};
}

}  // namespace lab::bootstrap::audit
