#include "pxe/recorder/store.hpp"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <set>
#include <string>

namespace lab::pxe::recorder {
namespace {

namespace sqlite = shared::sqlite;

constexpr std::array<sqlite::Migration, 1> kMigrations = {{
    {1,
     "CREATE TABLE events ("
     "  id INTEGER PRIMARY KEY,"  // insertion order: oldest first
     "  mac TEXT NOT NULL,"
     "  at_ms INTEGER NOT NULL,"
     "  kind TEXT NOT NULL,"
     "  ip TEXT NOT NULL,"
     "  detail TEXT NOT NULL"  // JSON [[key, value], ...]
     ");"
     "CREATE INDEX events_by_mac ON events(mac, id);"},
}};

std::string encode_detail(const std::vector<std::pair<std::string, std::string>>& detail) {
  boost::json::array a;
  for (const auto& [k, v] : detail)
    a.push_back(boost::json::array{boost::json::string(k), boost::json::string(v)});
  return boost::json::serialize(a);
}

std::optional<std::vector<std::pair<std::string, std::string>>> decode_detail(
    const std::string& text) {
  boost::system::error_code ec;
  const auto v = boost::json::parse(text, ec);
  if (ec || !v.is_array())
    return std::nullopt;
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& item : v.as_array()) {
    const auto* pair = item.if_array();
    if (pair == nullptr || pair->size() != 2 || !(*pair)[0].is_string() || !(*pair)[1].is_string())
      return std::nullopt;
    out.emplace_back(std::string((*pair)[0].as_string()), std::string((*pair)[1].as_string()));
  }
  return out;
}

}  // namespace

Result<TimelineStore> TimelineStore::open(const std::filesystem::path& path, StoreLimits limits) {
  LAB_TRY_ASSIGN(auto db, sqlite::Database::open(path));
  LAB_TRY(sqlite::migrate(db, kMigrations));
  if (limits.events_per_machine == 0)
    limits.events_per_machine = 1;
  if (limits.max_events == 0)
    limits.max_events = 1;
  return TimelineStore(std::move(db), limits);
}

Result<std::vector<events::Event>> TimelineStore::load() {
  LAB_TRY_ASSIGN(auto st,
                 db_.prepare("SELECT mac, at_ms, kind, ip, detail FROM events ORDER BY id"));
  std::vector<events::Event> out;
  for (;;) {
    LAB_TRY_ASSIGN(const bool row, st.step());
    if (!row)
      break;
    const auto kind = events::kind_from_name(st.text(2));
    auto detail = decode_detail(st.text(4));
    if (!kind || !detail)
      continue;
    events::Event e;
    e.mac = st.text(0);
    e.at = std::chrono::system_clock::time_point(std::chrono::milliseconds(st.int64(1)));
    e.kind = *kind;
    e.ip = st.text(3);
    e.detail = std::move(*detail);
    out.push_back(std::move(e));
  }
  return out;
}

Result<void> TimelineStore::append(const std::vector<events::Event>& batch) {
  LAB_TRY_ASSIGN(auto tx, sqlite::Transaction::begin(db_));
  LAB_TRY_ASSIGN(auto insert, db_.prepare("INSERT INTO events(mac, at_ms, kind, ip, detail) "
                                          "VALUES (?, ?, ?, ?, ?)"));
  std::set<std::string> machines;
  for (const auto& e : batch) {
    if (e.mac.empty())
      continue;
    const auto at_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(e.at.time_since_epoch()).count();
    LAB_TRY(insert.bind(e.mac, static_cast<std::int64_t>(at_ms), events::kind_name(e.kind), e.ip,
                        encode_detail(e.detail)));
    LAB_TRY(insert.run());
    machines.insert(e.mac);
  }
  // Each machine keeps its newest events_per_machine; everything its newest max_events.
  LAB_TRY_ASSIGN(auto trim_machine,
                 db_.prepare("DELETE FROM events WHERE mac = ?1 AND id <= (SELECT id FROM events "
                             "WHERE mac = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)"));
  for (const auto& mac : machines) {
    LAB_TRY(trim_machine.bind(mac, static_cast<std::int64_t>(limits_.events_per_machine)));
    LAB_TRY(trim_machine.run());
  }
  LAB_TRY_ASSIGN(auto trim_all,
                 db_.prepare("DELETE FROM events WHERE id <= (SELECT id FROM events ORDER BY id "
                             "DESC LIMIT 1 OFFSET ?1)"));
  LAB_TRY(trim_all.bind(static_cast<std::int64_t>(limits_.max_events)));
  LAB_TRY(trim_all.run());
  return tx.commit();
}

}  // namespace lab::pxe::recorder
