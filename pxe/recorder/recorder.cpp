#include "pxe/recorder/recorder.hpp"

#include "shared/net/mac.hpp"

#include <utility>

namespace lab::pxe::recorder {

bool teaches_address(events::Kind kind) noexcept {
  using events::Kind;
  return kind == Kind::dhcp_offer || kind == Kind::dhcp_ack || kind == Kind::proxy_offer ||
         kind == Kind::proxy_ack;
}

Recorder::Recorder(Limits limits) : limits_(limits) {
  if (limits_.max_machines == 0)
    limits_.max_machines = 1;
  if (limits_.events_per_machine == 0)
    limits_.events_per_machine = 1;
}

Recorder::Machine& Recorder::touch(const std::string& mac) {
  auto it = machines_.find(mac);
  if (it != machines_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return it->second;
  }
  while (machines_.size() >= limits_.max_machines && !lru_.empty()) {
    const std::string& victim = lru_.back();
    auto v = machines_.find(victim);
    if (v != machines_.end()) {
      if (auto ip = ip_to_mac_.find(v->second.ip); ip != ip_to_mac_.end() && ip->second == victim)
        ip_to_mac_.erase(ip);
      machines_.erase(v);
    }
    lru_.pop_back();
    ++stats_.machines_evicted;
  }
  lru_.push_front(mac);
  Machine& m = machines_[mac];
  m.lru = lru_.begin();
  return m;
}

// One IP per machine and one machine per IP: a reassigned address moves, and the map never
// holds more entries than there are machines.
void Recorder::learn(const std::string& mac, const std::string& ip, Machine& machine) {
  if (machine.ip == ip)
    return;
  if (!machine.ip.empty()) {
    if (auto old = ip_to_mac_.find(machine.ip); old != ip_to_mac_.end() && old->second == mac)
      ip_to_mac_.erase(old);
  }
  if (auto prev = ip_to_mac_.find(ip); prev != ip_to_mac_.end() && prev->second != mac) {
    if (auto other = machines_.find(prev->second); other != machines_.end())
      other->second.ip.clear();
  }
  ip_to_mac_[ip] = mac;
  machine.ip = ip;
}

void Recorder::record(events::Event event) {
  if (!event.mac.empty()) {
    auto mac = shared::net::normalize_mac(event.mac);
    event.mac = mac ? std::move(*mac) : std::string();
  }
  std::lock_guard lock(mu_);
  ++stats_.recorded;
  if (event.mac.empty()) {
    auto it = event.ip.empty() ? ip_to_mac_.end() : ip_to_mac_.find(event.ip);
    if (it == ip_to_mac_.end()) {
      ++stats_.unattributed;
      unattributed_.push_back(std::move(event));
      while (unattributed_.size() > limits_.unattributed)
        unattributed_.pop_front();
      return;
    }
    ++stats_.attributed_by_ip;
    event.mac = it->second;
  }
  if (observer_)
    observer_(event);
  keep(std::move(event));
}

void Recorder::keep(events::Event event) {
  Machine& m = touch(event.mac);
  if (!event.ip.empty() && teaches_address(event.kind))
    learn(event.mac, event.ip, m);
  m.events.push_back(std::move(event));
  while (m.events.size() > limits_.events_per_machine)
    m.events.pop_front();
}

void Recorder::on_kept(std::function<void(const events::Event&)> observer) {
  const std::lock_guard lock(mu_);
  observer_ = std::move(observer);
}

void Recorder::restore(std::vector<events::Event> events) {
  const std::lock_guard lock(mu_);
  for (auto& e : events) {
    auto mac = shared::net::normalize_mac(e.mac);
    if (!mac)
      continue;
    e.mac = std::move(*mac);
    keep(std::move(e));
  }
}

std::vector<events::Event> Recorder::timeline(std::string_view mac) const {
  const auto key = shared::net::normalize_mac(mac);
  if (!key)
    return {};
  std::lock_guard lock(mu_);
  auto it = machines_.find(*key);
  if (it == machines_.end())
    return {};
  return {it->second.events.begin(), it->second.events.end()};
}

std::optional<std::string> Recorder::mac_for_ip(std::string_view ip) const {
  std::lock_guard lock(mu_);
  auto it = ip_to_mac_.find(std::string(ip));
  if (it == ip_to_mac_.end())
    return std::nullopt;
  return it->second;
}

std::optional<std::string> Recorder::last_ip(std::string_view mac) const {
  const auto key = shared::net::normalize_mac(mac);
  if (!key)
    return std::nullopt;
  std::lock_guard lock(mu_);
  auto it = machines_.find(*key);
  if (it == machines_.end() || it->second.ip.empty())
    return std::nullopt;
  return it->second.ip;
}

std::vector<events::Event> Recorder::unattributed() const {
  std::lock_guard lock(mu_);
  return {unattributed_.begin(), unattributed_.end()};
}

std::vector<std::string> Recorder::machines() const {
  std::lock_guard lock(mu_);
  return {lru_.begin(), lru_.end()};
}

Stats Recorder::stats() const {
  std::lock_guard lock(mu_);
  Stats s = stats_;
  s.machines = machines_.size();
  return s;
}

}  // namespace lab::pxe::recorder
