// Machines an operator registered for network boot: a MAC and the address it boots from, for
// machines this appliance's DHCP does not serve (another DHCP server, static addresses).
#include "bootstrap/coordinator/audit.hpp"
#include "bootstrap/coordinator/coordinator_impl.hpp"

namespace lab::bootstrap::coordinator {
namespace {

constexpr std::size_t kMaxDescription = 200;

}  // namespace

Result<MachineInfo> CoordinatorImpl::register_machine(std::string_view mac_text,
                                                      std::string_view ip,
                                                      std::string_view description,
                                                      const Actor& actor) {
  const auto mac = canonical_mac(mac_text);
  if (!mac) {
    return Error(CoordinatorError::invalid_argument,
                 "'" + std::string(mac_text) + "' is not a MAC address like 52:54:00:12:34:56");
  }
  if (!valid_ip(ip)) {
    return Error(CoordinatorError::invalid_argument,
                 "'" + std::string(ip) + "' is not an IP address: boot tokens for " + *mac +
                     " are bound to the address it boots from");
  }
  if (description.size() > kMaxDescription) {
    return Error(CoordinatorError::invalid_argument,
                 "description: at most " + std::to_string(kMaxDescription) + " characters");
  }
  Lock lock(state_mutex_);
  const std::int64_t t = now();
  MachineRecord rec{std::string(ip), std::string(description), t};
  if (auto it = model_.machines.find(*mac); it != model_.machines.end())
    rec.registered_at = it->second.registered_at;
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  LAB_TRY(store_->run(
      "INSERT INTO machines (mac, ip, description, registered_at) VALUES (?, ?, ?, ?) "
      "ON CONFLICT (mac) DO UPDATE SET ip = excluded.ip, description = excluded.description",
      *mac, rec.ip, rec.description, rec.registered_at));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  LAB_TRY(append_audit(
      *store_,
      {t, actor, "machine.register", *mac, {{"ip", rec.ip}, {"description", rec.description}}}));
  MachineInfo info{*mac, rec.ip, rec.description, rec.registered_at, {}};
  if (auto owner = model_.id_by_mac.find(*mac); owner != model_.id_by_mac.end())
    info.node_id = owner->second;
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, Dirty{}, [&] {
                   model_.machines[*mac] = rec;
                   const std::unique_lock w(machines_mutex_);
                   registered_[*mac] = rec.ip;
                 }));
  lock.unlock();
  deliver(std::move(d));
  return info;
}

Result<std::vector<MachineInfo>> CoordinatorImpl::list_machines() {
  const Lock lock(state_mutex_);
  std::vector<MachineInfo> out;
  for (const auto& [mac, m] : model_.machines) {
    MachineInfo info{mac, m.ip, m.description, m.registered_at, {}};
    if (auto owner = model_.id_by_mac.find(mac); owner != model_.id_by_mac.end())
      info.node_id = owner->second;
    out.push_back(std::move(info));
  }
  return out;
}

Result<void> CoordinatorImpl::unregister_machine(std::string_view mac_text, const Actor& actor) {
  const auto mac = canonical_mac(mac_text);
  if (!mac) {
    return Error(CoordinatorError::invalid_argument,
                 "'" + std::string(mac_text) + "' is not a MAC address like 52:54:00:12:34:56");
  }
  Lock lock(state_mutex_);
  if (!model_.machines.contains(*mac))
    return Error(CoordinatorError::not_found, "no registered machine " + *mac);
  const std::int64_t t = now();
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  LAB_TRY(store_->run("DELETE FROM machines WHERE mac = ?", *mac));
  // Its live boot tokens go with it.
  LAB_TRY(store_->run(
      "UPDATE tokens SET revoked_at = ? WHERE kind = 'boot' AND bind_mac = ? AND used_at IS NULL "
      "AND revoked_at IS NULL",
      t, *mac));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  LAB_TRY(append_audit(*store_, {t, actor, "machine.unregister", *mac, {}}));
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, Dirty{}, [&] {
                   model_.machines.erase(*mac);
                   const std::unique_lock w(machines_mutex_);
                   registered_.erase(*mac);
                 }));
  lock.unlock();
  deliver(std::move(d));
  return {};
}

}  // namespace lab::bootstrap::coordinator
