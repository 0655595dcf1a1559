#pragma once
// The durable leases by MAC, for the HTTP boot server: which address this appliance's DHCP
// leased to (or, in proxy mode, saw used by) a MAC. It wraps the lease store, so it holds
// exactly what the store made durable, from load() at start-up and from each commit before the
// commit's ACKs go out; it is never a bounded cache that a flood could push a machine out of.
#include "pxe/dhcp/engine/lease_store.hpp"
#include "pxe/registry/registry.hpp"

#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

namespace lab::pxe::dhcp::engine {

/// The index; thread-safe. Fed by IndexedLeaseStore.
class LeaseIndex final : public registry::Leases {
 public:
  /// `now` gives Unix seconds.
  explicit LeaseIndex(std::function<std::int64_t()> now);

  /// Records that are durable now: bound and observed ones give their MAC an address,
  /// released and declined ones take it away; an address given to another MAC leaves the
  /// previous one.
  void learn(const std::vector<Lease>& records);

  /// The live (bound or observed, unexpired) address of `mac`, lower case with colons.
  [[nodiscard]] std::optional<std::string> address_of(std::string_view mac) const override;

 private:
  struct Entry {
    wire::Ipv4 ip;
    std::int64_t expires = 0;
  };
  std::function<std::int64_t()> now_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> by_mac_;
  std::unordered_map<std::uint32_t, std::string> by_ip_;
};

/// A lease store that tells an index what it made durable.
class IndexedLeaseStore final : public LeaseStore {
 public:
  /// Both must outlive this store.
  IndexedLeaseStore(LeaseStore& inner, LeaseIndex& index) : inner_(inner), index_(index) {}

  /// The inner store's leases, indexed on the way.
  Result<std::vector<Lease>> load() override;
  /// Commits through the inner store; once it is durable the index learns the records, then
  /// `done` runs (so a client's ACK never precedes the index knowing its address).
  void commit(std::vector<Lease> records, std::function<void(Result<void>)> done) override;

 private:
  LeaseStore& inner_;
  LeaseIndex& index_;
};

}  // namespace lab::pxe::dhcp::engine
