// Health checks: a definition and a selector; every node the selector matches gets the check in
// its bundle, so checks follow label changes like groups and secrets do.
#include "bootstrap/coordinator/audit.hpp"
#include "bootstrap/coordinator/coordinator_impl.hpp"

#include <boost/json/serialize.hpp>

namespace lab::bootstrap::coordinator {

std::vector<shared::protocol::Check> CoordinatorImpl::checks_of(
    const shared::labels::LabelSet& labels) const {
  std::vector<shared::protocol::Check> out;
  for (const auto& [name, c] : model_.checks) {
    if (c.selector && c.selector->matches(labels) && out.size() < shared::protocol::kMaxChecks)
      out.push_back(c.info.check);
  }
  return out;
}

Result<CheckInfo> CoordinatorImpl::set_check(const CheckInfo& check, const Actor& actor) {
  // The wire form is the one validation: what is stored is what a node will accept.
  const boost::json::object spec = shared::protocol::check_to_json(check.check);
  auto parsed = shared::protocol::check_from_json(spec);
  if (!parsed)
    return Error(CoordinatorError::invalid_argument, parsed.error().detail());
  LAB_TRY_ASSIGN(auto selector, parse_optional_selector(check.selector, "check selector"));
  CheckInfo info{std::move(*parsed), selector ? selector->to_string() : std::string()};
  Lock lock(state_mutex_);
  if (auto it = model_.checks.find(info.check.name); it != model_.checks.end()) {
    if (it->second.info.check == info.check && it->second.info.selector == info.selector)
      return info;
  } else if (model_.checks.size() >= shared::protocol::kMaxChecks) {
    return Error(CoordinatorError::invalid_argument,
                 "there are already 64 checks, the most a node can be given");
  }
  const std::int64_t t = now();
  const std::string spec_text = boost::json::serialize(shared::protocol::check_to_json(info.check));
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  LAB_TRY(store_->run(
      "INSERT INTO checks (name, selector, spec) VALUES (?, ?, ?) "
      "ON CONFLICT (name) DO UPDATE SET selector = excluded.selector, spec = excluded.spec",
      info.check.name, info.selector, spec_text));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  LAB_TRY(append_audit(*store_, {t,
                                 actor,
                                 "check.set",
                                 info.check.name,
                                 {{"selector", info.selector}, {"spec", spec_text}}}));
  auto apply = [&] { model_.checks[info.check.name] = CheckRecord{info, std::move(selector)}; };
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, Dirty::everything(), apply));
  lock.unlock();
  deliver(std::move(d));
  return info;
}

Result<std::vector<CheckInfo>> CoordinatorImpl::list_checks() {
  const Lock lock(state_mutex_);
  std::vector<CheckInfo> out;
  for (const auto& [name, c] : model_.checks)
    out.push_back(c.info);
  return out;
}

Result<void> CoordinatorImpl::delete_check(std::string_view name, const Actor& actor) {
  Lock lock(state_mutex_);
  if (!model_.checks.contains(name))
    return Error(CoordinatorError::not_found, "no check '" + std::string(name) + "'");
  const std::int64_t t = now();
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  LAB_TRY(store_->run("DELETE FROM checks WHERE name = ?", name));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  LAB_TRY(append_audit(*store_, {t, actor, "check.delete", std::string(name), {}}));
  auto apply = [&] { model_.checks.erase(model_.checks.find(name)); };
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, Dirty::everything(), apply));
  lock.unlock();
  deliver(std::move(d));
  return {};
}

}  // namespace lab::bootstrap::coordinator
