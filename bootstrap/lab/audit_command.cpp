// lab audit list|verify|export: the hash-chained audit trail, its signed head, and exports of it
// that show later changes.
#include "bootstrap/audit/export.hpp"
#include "bootstrap/lab/commands.hpp"
#include "bootstrap/lab/output.hpp"
#include "shared/config/config.hpp"
#include "shared/crypto/encoding.hpp"
#include "shared/json/json.hpp"
#include "shared/text/time.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <utility>

namespace lab::bootstrap::commands {
namespace {

namespace cr = shared::crypto;
namespace json = boost::json;

// The most rows GET /v1/audit returns at once.
constexpr std::size_t kPage = 1000;

struct ListOptions {
  std::int64_t after = -1;  // set: oldest first from here, as scripts page through the trail
  std::int64_t limit = 100;
  std::string since;  // a duration back from now ("1h") or a time ("2026-12-06T10:00:00Z")
};

// --since as unix seconds: a duration counts back from now.
Result<std::int64_t> since_time(const std::string& since) {
  if (auto t = shared::text::parse_time(since))
    return *t;
  if (auto d = shared::config::parse_duration(since); d && d->count() > 0) {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
               .count() -
           d->count();
  }
  return Error(LabError::usage, "--since '" + since +
                                    "' is neither a duration like 1h or 7d nor a time like "
                                    "2026-12-06T10:00:00Z");
}

// The newest `limit` events at or after `since`, newest first: the head names the last
// sequence number, and the pages after head - limit hold them.
Result<json::array> newest_events(ApiClient& api, std::int64_t limit, std::int64_t since) {
  LAB_TRY_ASSIGN(json::value head, api.call("GET", "/v1/audit/head"));
  std::int64_t after = std::max<std::int64_t>(0, integer(head, "seq") - limit);
  std::vector<json::value> rows;
  for (;;) {
    LAB_TRY_ASSIGN(json::value page,
                   api.call("GET", fmt::format("/v1/audit?after={}&limit={}", after, kPage)));
    if (!page.is_array())
      return Error(LabError::bad_response, "GET /v1/audit did not answer with an array");
    if (page.as_array().empty())
      break;
    for (auto& e : page.as_array())
      rows.push_back(std::move(e));
    after = integer(rows.back(), "seq");
  }
  json::array out;
  for (auto it = rows.rbegin(); it != rows.rend() && std::cmp_less(out.size(), limit); ++it) {
    if (integer(*it, "at") >= since)
      out.push_back(std::move(*it));
  }
  return out;
}

struct VerifyOptions {
  std::string against;  // an export to hold the live trail to
};

struct ExportOptions {
  std::string out;  // empty: stdout
};

audit::FetchRows fetch_rows(ApiClient& api) {
  return [&api](std::int64_t after, std::size_t limit) -> Result<json::array> {
    LAB_TRY_ASSIGN(json::value r,
                   api.call("GET", fmt::format("/v1/audit?after={}&limit={}", after, limit)));
    if (!r.is_array())
      return Error(LabError::bad_response, "GET /v1/audit did not answer with an array");
    return std::move(r.as_array());
  };
}

Result<json::object> live_head(ApiClient& api) {
  LAB_TRY_ASSIGN(json::value r, api.call("GET", "/v1/audit/head"));
  if (!r.is_object())
    return Error(LabError::bad_response, "GET /v1/audit/head did not answer with an object");
  return std::move(r.as_object());
}

// The appliance's key as the coordinator reports it, over the TLS connection pinned to its CA.
Result<cr::Ed25519PublicKey> appliance_key(const json::object& head) {
  auto line = audit::head_line_from_json(head);
  if (!line)
    return Error(LabError::bad_response, "GET /v1/audit/head: " + line.error().detail());
  auto raw = cr::base64url_decode(line->key);
  auto key = raw ? cr::Ed25519PublicKey::from_raw(*raw) : Result<cr::Ed25519PublicKey>(raw.error());
  if (!key)
    return Error(LabError::bad_response, "GET /v1/audit/head: 'key' is not an Ed25519 key");
  return std::move(*key);
}

json::object check_json(const audit::Check& c) {
  return {{"ok", c.ok}, {"rows", c.rows}, {"first_bad_seq", c.first_bad_seq}, {"reason", c.reason}};
}

Result<std::ifstream> open_export(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Error(LabError::input, "cannot read the audit export " + path);
  return in;
}

Error in_file(Error e, const std::string& path) {
  e.context(path);
  return e;
}

// `verify --against FILE`: the file on its own (its chain, and a head signed by this
// appliance's key naming its last row), then the live trail still holding every exported row.
// Fills `out` for --output json; returns the first failure.
Result<void> verify_export(ApiClient& api, const std::string& path, json::object& out) {
  LAB_TRY_ASSIGN(json::object head, live_head(api));
  LAB_TRY_ASSIGN(cr::Ed25519PublicKey key, appliance_key(head));
  LAB_TRY_ASSIGN(std::ifstream file, open_export(path));
  auto alone = audit::check_export(file, key);
  if (!alone)
    return in_file(alone.error(), path);
  out["export"] = check_json(*alone);
  if (!alone->ok)
    return Error(LabError::verify_failed, path + " does not verify: " + alone->reason);

  LAB_TRY_ASSIGN(std::ifstream again, open_export(path));
  auto held = audit::compare_export(again, fetch_rows(api), kPage);
  if (!held)
    return in_file(held.error(), path);
  out["live_holds_export"] = check_json(*held);
  if (!held->ok) {
    return Error(LabError::verify_failed,
                 "the live audit trail no longer holds " + path + ": " + held->reason);
  }
  return {};
}

}  // namespace

void add_audit(CLI::App& app, shared::cli::Action& action) {
  auto flags = std::make_shared<ClientFlags>();
  CLI::App* noun =
      app.add_subcommand("audit", "The audit trail: list events, verify the chain, export it");
  noun->require_subcommand(1);
  add_client_flags(*noun, flags);

  auto l = std::make_shared<ListOptions>();
  CLI::App* list = add_verb(
      *noun, "list", "List audit events", action, flags,
      [l](ApiClient& api, const ClientFlags& f) -> Result<void> {
        std::int64_t since = 0;
        if (!l->since.empty()) {
          LAB_TRY_ASSIGN(since, since_time(l->since));
        }
        json::value r;
        if (l->after >= 0) {
          LAB_TRY_ASSIGN(
              r, api.call("GET", fmt::format("/v1/audit?after={}&limit={}", l->after, l->limit)));
          if (since > 0 && r.is_array()) {
            json::array kept;
            for (auto& e : r.as_array()) {
              if (integer(e, "at") >= since)
                kept.push_back(std::move(e));
            }
            r = std::move(kept);
          }
        } else {
          LAB_TRY_ASSIGN(r, newest_events(api, l->limit, since));
        }
        if (f.document()) {
          print_document(r);
          return {};
        }
        Table t({"SEQ", "TIME", "ACTOR", "ACTION", "SUBJECT", "DETAIL"});
        if (r.is_array()) {
          for (const auto& e : r.get_array()) {
            const auto* d = e.is_object() ? e.as_object().if_contains("detail") : nullptr;
            t.add({text(e, "seq"), format_time(integer(e, "at")), text(e, "actor"),
                   text(e, "action"), text(e, "subject"),
                   d != nullptr && d->is_object() && !d->as_object().empty()
                       ? shared::json::to_string(*d)
                       : ""});
          }
        }
        t.print();
        return {};
      });
  list->add_option("--after", l->after,
                   "events after this sequence number, oldest first (for paging)")
      ->check(CLI::NonNegativeNumber);
  list->add_option("--limit", l->limit, "at most this many events (1–1000, default 100)")
      ->check(CLI::Range(1, 1000));
  list->add_option("--since", l->since,
                   "only events since then: a duration back from now (1h, 7d) or a time "
                   "(2026-12-06T10:00:00Z, 2026-12-06)")
      ->check([](const std::string& s) {
        auto t = since_time(s);
        return t ? std::string() : t.error().detail();
      });
  list->footer(
      "Newest first: the last --limit events (since --since). With --after, the events after "
      "that sequence number, oldest first, as a script pages through the trail.");

  auto v = std::make_shared<VerifyOptions>();
  CLI::App* verify = add_verb(
      *noun, "verify",
      "Check the hash chain of the whole audit trail and the appliance's signature on its head",
      action, flags, [v](ApiClient& api, const ClientFlags& f) -> Result<void> {
        json::object out;
        if (!v->against.empty()) {
          auto r = verify_export(api, v->against, out);
          if (!r) {
            if (f.document())
              print_document(out);
            return r;
          }
        }
        LAB_TRY_ASSIGN(json::value r, api.call("GET", "/v1/audit/verify"));
        const bool ok = r.is_object() && r.as_object().contains("ok") && r.at("ok").is_bool() &&
                        r.at("ok").as_bool();
        if (f.document()) {
          if (v->against.empty()) {
            print_document(r);
          } else {
            out["live"] = r;
            print_document(out);
          }
        } else if (ok && v->against.empty()) {
          fmt::print("audit trail ok: {} events\n", text(r, "rows"));
        } else if (ok) {
          fmt::print("audit trail ok: {} events; it still holds all {} events of {}\n",
                     text(r, "rows"), text(out["export"], "rows"), v->against);
        }
        if (!ok) {
          const std::string at = text(r, "first_bad_seq");
          return Error(LabError::verify_failed,
                       (at.empty() || at == "0" ? "audit trail broken: "
                                                : "audit trail broken at event " + at + ": ") +
                           text(r, "reason"));
        }
        return {};
      });
  verify
      ->add_option("--against", v->against,
                   "an earlier `lab audit export`: it must verify on its own and every event in "
                   "it must still be in the live trail, unchanged")
      ->check(CLI::ExistingFile);

  auto e = std::make_shared<ExportOptions>();
  CLI::App* exp = add_verb(
      *noun, "export",
      "Write the signed head and every event up to it as JSON lines, for `verify --against`",
      action, flags, [e](ApiClient& api, const ClientFlags& f) -> Result<void> {
        LAB_TRY_ASSIGN(json::object head, live_head(api));
        const std::int64_t head_seq = integer(head, "seq");
        std::int64_t rows = 0;
        if (e->out.empty()) {
          auto written = audit::write_export(std::cout, head, fetch_rows(api), kPage);
          if (!written)
            return written.error();
          rows = *written;
        } else {
          // Written beside the target and renamed, so a file at that name is always whole.
          const std::filesystem::path tmp = e->out + ".tmp";
          std::ofstream file(tmp, std::ios::binary | std::ios::trunc);
          if (!file)
            return Error(LabError::input, "cannot write " + tmp.string());
          auto written = audit::write_export(file, head, fetch_rows(api), kPage);
          file.close();
          std::error_code ec;
          if (!written || !file) {
            std::filesystem::remove(tmp, ec);
            return written ? Error(LabError::input, "cannot write " + tmp.string())
                           : written.error();
          }
          std::filesystem::rename(tmp, e->out, ec);
          if (ec)
            return Error(LabError::input, "rename " + tmp.string() + ": " + ec.message());
          rows = *written;
          if (f.document()) {
            print_document(json::object{{"file", e->out}, {"rows", rows}, {"head", head}});
          } else {
            fmt::print("exported {} events, up to the signed head at event {}, to {}\n", rows,
                       head_seq, e->out);
          }
        }
        if (rows != head_seq) {
          return Error(LabError::verify_failed,
                       fmt::format("exported {} events but the signed head names event {}: the "
                                   "trail is broken (run lab audit verify); exported as it is",
                                   rows, head_seq));
        }
        return {};
      });
  exp->add_option("--out", e->out, "write to this file instead of stdout");
}

}  // namespace lab::bootstrap::commands
