#include "bootstrap/coordinator/model.hpp"

#include "shared/crypto/encoding.hpp"
#include "shared/json/json.hpp"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

namespace lab::bootstrap::coordinator {
namespace {

namespace sq = shared::sqlite;
namespace lb = shared::labels;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

Result<void> load_nodes(Store& store, Model& m) {
  LAB_TRY_ASSIGN(sq::Statement * st,
                 store.query("SELECT id, name, state, labels, facts, created_at, last_seen, "
                             "agent_version, sealing_key, peer_address, cert_serial, "
                             "cert_expires_at, reinstall_armed, key_protection, checks, "
                             "config_run FROM nodes"));
  for (;;) {
    LAB_TRY_ASSIGN(bool row, Store::step(*st));
    if (!row)
      break;
    NodeRecord n;
    n.id = st->text(0);
    n.name = st->text(1);
    n.state = st->text(2);
    n.labels = labels_from_json(st->text(3));
    if (auto facts = shared::json::parse_object(st->text(4)))
      n.facts = std::move(*facts);
    n.created_at = st->int64(5);
    n.last_seen = st->int64(6);
    n.agent_version = st->text(7);
    n.sealing_key = st->text(8);
    n.peer_address = st->text(9);
    n.cert_serial = st->text(10);
    n.cert_expires_at = st->int64(11);
    n.reinstall_armed = st->int64(12) != 0;
    n.key_protection = st->text(13);
    n.checks = check_results_from_json(st->text(14));
    if (auto run = shared::json::parse_object(st->text(15)))
      n.config_run = std::move(*run);
    m.id_by_name[n.name] = n.id;
    m.nodes.emplace(n.id, std::move(n));
  }
  LAB_TRY_ASSIGN(st, store.query("SELECT mac, node_id FROM node_macs ORDER BY mac"));
  for (;;) {
    LAB_TRY_ASSIGN(bool row, Store::step(*st));
    if (!row)
      break;
    std::string mac = st->text(0);
    std::string node = st->text(1);
    if (auto it = m.nodes.find(node); it != m.nodes.end()) {
      it->second.macs.push_back(mac);
      m.id_by_mac[mac] = node;
    }
  }
  LAB_TRY_ASSIGN(st, store.query("SELECT serial, node_id, expires_at, revoked_at FROM certs"));
  for (;;) {
    LAB_TRY_ASSIGN(bool row, Store::step(*st));
    if (!row)
      break;
    m.certs[st->text(0)] = CertRecord{st->text(1), st->int64(2), !st->is_null(3)};
  }
  for (const auto& [serial, cert] : m.certs) {
    auto it = m.nodes.find(cert.node_id);
    if (!cert.revoked && it != m.nodes.end() && it->second.cert_serial != serial)
      it->second.superseded.push_back(serial);
  }
  return {};
}

Result<void> load_machines_and_operators(Store& store, Model& m) {
  LAB_TRY_ASSIGN(sq::Statement * st,
                 store.query("SELECT mac, ip, description, registered_at FROM machines"));
  for (;;) {
    LAB_TRY_ASSIGN(bool row, Store::step(*st));
    if (!row)
      break;
    m.machines[st->text(0)] = MachineRecord{st->text(1), st->text(2), st->int64(3)};
  }
  LAB_TRY_ASSIGN(st, store.query("SELECT name, token_sha256, created_at, expires_at, revoked_at, "
                                 "created_by FROM operators"));
  for (;;) {
    LAB_TRY_ASSIGN(bool row, Store::step(*st));
    if (!row)
      break;
    OperatorRecord o;
    o.name = st->text(0);
    o.token_sha256 = st->blob(1);
    o.created_at = st->int64(2);
    o.expires_at = st->is_null(3) ? 0 : st->int64(3);
    o.revoked = !st->is_null(4);
    o.created_by = st->text(5);
    m.operator_by_hash[shared::crypto::hex_encode(o.token_sha256)] = o.name;
    m.operators.emplace(o.name, std::move(o));
  }
  return {};
}

Result<void> load_groups_and_secrets(Store& store, Model& m) {
  LAB_TRY_ASSIGN(sq::Statement * st,
                 store.query("SELECT name, selector, includes, excludes FROM groups"));
  for (;;) {
    LAB_TRY_ASSIGN(bool row, Store::step(*st));
    if (!row)
      break;
    GroupRecord g;
    g.info.name = st->text(0);
    g.info.selector = st->text(1);
    g.info.includes = strings_from_json(st->text(2));
    g.info.excludes = strings_from_json(st->text(3));
    auto sel = parse_optional_selector(g.info.selector, "group selector");
    if (sel)
      g.selector = std::move(*sel);
    m.groups.emplace(g.info.name, std::move(g));
  }
  LAB_TRY_ASSIGN(st, store.query("SELECT name, selector, spec FROM checks"));
  for (;;) {
    LAB_TRY_ASSIGN(bool row, Store::step(*st));
    if (!row)
      break;
    auto spec = shared::json::parse_object(st->text(2));
    auto check = spec ? shared::protocol::check_from_json(*spec)
                      : Result<shared::protocol::Check>(spec.error());
    if (!check)
      continue;  // written by this code, so only a hand-edited row gets here
    CheckRecord c;
    c.info.check = std::move(*check);
    c.info.selector = st->text(1);
    if (auto sel = parse_optional_selector(c.info.selector, "check selector"))
      c.selector = std::move(*sel);
    m.checks.emplace(c.info.check.name, std::move(c));
  }
  LAB_TRY_ASSIGN(st, store.query("SELECT name, value, entitlement, version, updated_at, size, "
                                 "require FROM secrets"));
  for (;;) {
    LAB_TRY_ASSIGN(bool row, Store::step(*st));
    if (!row)
      break;
    SecretRecord s;
    s.info.name = st->text(0);
    s.wrapped = st->blob(1);
    s.info.entitlement = st->text(2);
    s.info.version = st->int64(3);
    s.info.updated_at = st->int64(4);
    s.info.size = static_cast<std::size_t>(st->int64(5));
    s.info.require = st->text(6);
    if (auto sel = parse_optional_selector(s.info.entitlement, "entitlement"))
      s.entitlement = std::move(*sel);
    m.secrets.emplace(s.info.name, std::move(s));
  }
  return {};
}

}  // namespace

const NodeRecord* Model::find(std::string_view id_or_name) const {
  if (auto it = nodes.find(id_or_name); it != nodes.end())
    return &it->second;
  if (auto it = id_by_name.find(std::string(id_or_name)); it != id_by_name.end()) {
    if (auto n = nodes.find(it->second); n != nodes.end())
      return &n->second;
  }
  return nullptr;
}

std::vector<std::string> Model::revoked_serials(std::int64_t now) const {
  std::vector<std::string> out;
  for (const auto& [serial, cert] : certs) {
    if (cert.revoked && cert.expires_at > now)
      out.push_back(serial);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<Model> load_model(Store& store) {
  Model m;
  LAB_TRY(load_nodes(store, m));
  LAB_TRY(load_groups_and_secrets(store, m));
  LAB_TRY(load_machines_and_operators(store, m));
  return m;
}

Result<void> check_name(shared::names::Kind kind, std::string_view name) {
  if (auto r = shared::names::check(kind, name); !r)
    return Error(CoordinatorError::invalid_argument, r.error().detail());
  return {};
}

bool is_active_state(std::string_view state) {
  return state == "enrolled" || state == "provisioning" || state == "ready";
}

std::string labels_to_json(const lb::LabelSet& labels) {
  boost::json::object o;
  for (const auto& [k, v] : labels)
    o[k] = v;
  return boost::json::serialize(o);
}

lb::LabelSet labels_from_json(std::string_view text) {
  lb::LabelSet out;
  auto o = shared::json::parse_object(text);
  if (!o)
    return out;
  for (const auto& kv : *o) {
    if (kv.value().is_string())
      out.emplace(std::string(kv.key()), std::string(kv.value().as_string()));
  }
  return out;
}

std::string strings_to_json(const std::vector<std::string>& v) {
  boost::json::array a;
  for (const auto& s : v)
    a.emplace_back(s);
  return boost::json::serialize(a);
}

std::string check_results_to_json(const std::vector<shared::protocol::CheckResult>& results) {
  boost::json::array a;
  for (const auto& r : results)
    a.push_back(shared::protocol::check_result_to_json(r));
  return boost::json::serialize(a);
}

std::vector<shared::protocol::CheckResult> check_results_from_json(std::string_view text) {
  std::vector<shared::protocol::CheckResult> out;
  auto v = shared::json::parse(text);
  if (!v || !v->is_array())
    return out;
  for (const auto& item : v->as_array()) {
    if (!item.is_object())
      continue;
    if (auto r = shared::protocol::check_result_from_json(item.as_object()))
      out.push_back(std::move(*r));
  }
  return out;
}

std::vector<std::string> strings_from_json(std::string_view text) {
  std::vector<std::string> out;
  auto v = shared::json::parse(text);
  if (!v || !v->is_array())
    return out;
  for (const auto& item : v->as_array()) {
    if (item.is_string())
      out.emplace_back(item.as_string());
  }
  return out;
}

Result<std::optional<lb::Selector>> parse_optional_selector(std::string_view text,
                                                            std::string_view what) {
  const bool blank =
      std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isspace(c) != 0; });
  if (blank)
    return std::optional<lb::Selector>();
  auto sel = lb::Selector::parse(text);
  if (!sel) {
    return Error(CoordinatorError::invalid_argument,
                 std::string(what) + " '" + std::string(text) + "': " + sel.error().detail());
  }
  return std::optional<lb::Selector>(std::move(*sel));
}

std::vector<std::string> macs_from_facts(const boost::json::object& facts) {
  std::vector<std::string> out;
  auto add = [&](const boost::json::value& v) {
    if (v.is_string() && !v.as_string().empty())
      out.push_back(lower(v.as_string()));
  };
  if (const auto* nics = facts.if_contains("nics"); nics && nics->is_array()) {
    for (const auto& nic : nics->as_array()) {
      if (nic.is_object()) {
        if (const auto* mac = nic.as_object().if_contains("mac"))
          add(*mac);
      }
    }
  }
  if (const auto* macs = facts.if_contains("macs"); macs && macs->is_array()) {
    for (const auto& mac : macs->as_array())
      add(mac);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  // Loopback and unset interfaces carry the all-zero address; it names no machine.
  std::erase(out, "00:00:00:00:00:00");
  return out;
}

bool valid_peer_address(std::string_view text) {
  if (text.empty() || text.size() > 64)
    return false;
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == text.size())
    return false;
  std::string_view host = text.substr(0, colon);
  const std::string_view port = text.substr(colon + 1);
  unsigned value = 0;
  const auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || p != port.data() + port.size() || value == 0 || value > 65535 ||
      port.front() == '0') {
    return false;
  }
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    return valid_ip(host.substr(1, host.size() - 2));
  return host.find(':') == std::string_view::npos && valid_ip(host);
}

bool valid_ip(std::string_view text) {
  if (text.empty() || text.size() > 45)
    return false;
  std::array<unsigned char, 16> buf{};
  const std::string s(text);
  return inet_pton(AF_INET, s.c_str(), buf.data()) == 1 ||
         inet_pton(AF_INET6, s.c_str(), buf.data()) == 1;
}

std::optional<std::string> canonical_mac(std::string_view text) {
  if (text.size() != 17)
    return std::nullopt;
  std::string out = lower(text);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const char c = out[i];
    const bool ok = i % 3 == 2 ? c == ':' : std::isxdigit(static_cast<unsigned char>(c)) != 0;
    if (!ok)
      return std::nullopt;
  }
  return out;
}

bool protection_meets(std::string_view protection, std::string_view require) {
  if (require.empty())
    return true;
  if (require == "tpm")
    return protection == "tpm" || protection == "tpm+pcr";
  return protection == require;
}

}  // namespace lab::bootstrap::coordinator
