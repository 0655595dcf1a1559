#include "pxe/dhcp/engine/lease_index.hpp"

#include <algorithm>
#include <cctype>

namespace lab::pxe::dhcp::engine {

LeaseIndex::LeaseIndex(std::function<std::int64_t()> now) : now_(std::move(now)) {}

Result<std::vector<Lease>> IndexedLeaseStore::load() {
  auto leases = inner_.load();
  if (leases)
    index_.learn(*leases);
  return leases;
}

void IndexedLeaseStore::commit(std::vector<Lease> records, std::function<void(Result<void>)> done) {
  // The records are needed after the inner store has taken them; a copy per batch, on the
  // DHCP server's path, is a few small strings.
  auto copy = std::make_shared<std::vector<Lease>>(records);
  inner_.commit(std::move(records), [this, copy, done = std::move(done)](const Result<void>& r) {
    if (r)
      index_.learn(*copy);
    done(r);
  });
}

void LeaseIndex::learn(const std::vector<Lease>& records) {
  const std::lock_guard lock(mu_);
  for (const auto& l : records) {
    // The address's previous holder no longer has it.
    if (auto it = by_ip_.find(l.ip.value); it != by_ip_.end()) {
      if (auto m = by_mac_.find(it->second); m != by_mac_.end() && m->second.ip == l.ip)
        by_mac_.erase(m);
      by_ip_.erase(it);
    }
    const bool live = l.state == Lease::State::bound || l.state == Lease::State::observed;
    if (!live || l.mac.empty())
      continue;
    if (auto m = by_mac_.find(l.mac); m != by_mac_.end())
      by_ip_.erase(m->second.ip.value);  // the MAC moved to another address
    by_mac_[l.mac] = Entry{l.ip, l.expires};
    by_ip_[l.ip.value] = l.mac;
  }
}

std::optional<std::string> LeaseIndex::address_of(std::string_view mac) const {
  std::string key(mac);
  std::transform(key.begin(), key.end(), key.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const std::lock_guard lock(mu_);
  auto it = by_mac_.find(key);
  if (it == by_mac_.end() || it->second.expires <= now_())
    return std::nullopt;
  return it->second.ip.to_string();
}

}  // namespace lab::pxe::dhcp::engine
