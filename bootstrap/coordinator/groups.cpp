// Groups: a named selector plus included and excluded groups; memberships are resolved from
// labels, so they follow every label change without being stored per node.
#include "bootstrap/coordinator/audit.hpp"
#include "bootstrap/coordinator/coordinator_impl.hpp"

#include <algorithm>
#include <functional>
#include <set>

namespace lab::bootstrap::coordinator {
namespace {

namespace lb = shared::labels;

// The cycle through `start`, if adding its edges closes one: "a -> b -> a".
std::optional<std::string> find_cycle(const std::map<std::string, GroupRecord, std::less<>>& groups,
                                      const GroupInfo& candidate) {
  auto edges = [&](const std::string& name) -> std::vector<std::string> {
    const GroupInfo* g = nullptr;
    if (name == candidate.name) {
      g = &candidate;
    } else if (auto it = groups.find(name); it != groups.end()) {
      g = &it->second.info;
    }
    if (g == nullptr)
      return {};
    std::vector<std::string> out = g->includes;
    out.insert(out.end(), g->excludes.begin(), g->excludes.end());
    return out;
  };
  std::vector<std::string> path{candidate.name};
  std::set<std::string, std::less<>> done;
  std::function<bool(const std::string&)> visit = [&](const std::string& name) -> bool {
    for (const auto& next : edges(name)) {
      if (next == candidate.name) {
        path.push_back(next);
        return true;
      }
      if (done.contains(next) || std::find(path.begin(), path.end(), next) != path.end())
        continue;
      path.push_back(next);
      if (visit(next))
        return true;
      path.pop_back();
      done.insert(next);
    }
    return false;
  };
  if (!visit(candidate.name))
    return std::nullopt;
  std::string text;
  for (const auto& p : path)
    text += (text.empty() ? "" : " -> ") + p;
  return text;
}

}  // namespace

std::vector<std::string> CoordinatorImpl::groups_of(const lb::LabelSet& labels) const {
  // Memoised per call: 0 unknown, 1 member, 2 not a member. The graph has no cycles
  // (set_group refuses them), so the recursion ends.
  std::map<std::string_view, int> memo;
  std::function<bool(const std::string&)> member = [&](const std::string& name) -> bool {
    auto it = model_.groups.find(name);
    if (it == model_.groups.end())
      return false;
    if (auto m = memo.find(it->first); m != memo.end())
      return m->second == 1;
    const GroupRecord& g = it->second;
    bool in = g.selector && g.selector->matches(labels);
    for (std::size_t i = 0; !in && i < g.info.includes.size(); ++i)
      in = member(g.info.includes[i]);
    for (std::size_t i = 0; in && i < g.info.excludes.size(); ++i)
      in = !member(g.info.excludes[i]);
    memo[it->first] = in ? 1 : 2;
    return in;
  };
  std::vector<std::string> out;
  for (const auto& [name, g] : model_.groups) {
    if (member(name))
      out.push_back(name);
  }
  return out;
}

Result<GroupInfo> CoordinatorImpl::set_group(const GroupInfo& group, const Actor& actor) {
  LAB_TRY(check_name(shared::names::Kind::group, group.name));
  LAB_TRY_ASSIGN(auto selector, parse_optional_selector(group.selector, "group selector"));
  GroupInfo info = group;
  info.selector = selector ? selector->to_string() : std::string();
  for (auto* list : {&info.includes, &info.excludes}) {
    std::sort(list->begin(), list->end());
    list->erase(std::unique(list->begin(), list->end()), list->end());
  }
  Lock lock(state_mutex_);
  for (const auto* list : {&info.includes, &info.excludes}) {
    for (const auto& ref : *list) {
      if (ref == info.name) {
        return Error(CoordinatorError::group_cycle, info.name + " -> " + info.name);
      }
      if (!model_.groups.contains(ref)) {
        return Error(CoordinatorError::invalid_argument,
                     "group '" + info.name + "' refers to unknown group '" + ref + "'");
      }
    }
  }
  if (auto cycle = find_cycle(model_.groups, info))
    return Error(CoordinatorError::group_cycle, *cycle);
  if (auto it = model_.groups.find(info.name); it != model_.groups.end()) {
    const GroupInfo& old = it->second.info;
    if (old.selector == info.selector && old.includes == info.includes &&
        old.excludes == info.excludes) {
      return info;
    }
  }
  const std::int64_t t = now();
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  LAB_TRY(store_->run(
      "INSERT INTO groups (name, selector, includes, excludes) VALUES (?, ?, ?, ?) "
      "ON CONFLICT (name) DO UPDATE SET selector = excluded.selector, "
      "includes = excluded.includes, excludes = excluded.excludes",
      info.name, info.selector, strings_to_json(info.includes), strings_to_json(info.excludes)));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  LAB_TRY(append_audit(*store_, {t,
                                 actor,
                                 "group.set",
                                 info.name,
                                 {{"selector", info.selector},
                                  {"includes", strings_to_json(info.includes)},
                                  {"excludes", strings_to_json(info.excludes)}}}));
  auto apply = [&] { model_.groups[info.name] = GroupRecord{info, std::move(selector)}; };
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, Dirty::everything(), apply));
  lock.unlock();
  deliver(std::move(d));
  return info;
}

Result<std::vector<GroupInfo>> CoordinatorImpl::list_groups() {
  const Lock lock(state_mutex_);
  std::vector<GroupInfo> out;
  for (const auto& [name, g] : model_.groups)
    out.push_back(g.info);
  return out;
}

Result<std::vector<NodeInfo>> CoordinatorImpl::group_members(std::string_view name) {
  const Lock lock(state_mutex_);
  if (!model_.groups.contains(name))
    return Error(CoordinatorError::not_found, "no group '" + std::string(name) + "'");
  std::vector<NodeInfo> out;
  for (const auto& [id, n] : model_.nodes) {
    if (n.state == "revoked")
      continue;
    NodeInfo info = node_info(n);
    if (std::find(info.groups.begin(), info.groups.end(), name) != info.groups.end())
      out.push_back(std::move(info));
  }
  return out;
}

Result<void> CoordinatorImpl::delete_group(std::string_view name, const Actor& actor) {
  Lock lock(state_mutex_);
  if (!model_.groups.contains(name))
    return Error(CoordinatorError::not_found, "no group '" + std::string(name) + "'");
  for (const auto& [other, g] : model_.groups) {
    const auto& inc = g.info.includes;
    const auto& exc = g.info.excludes;
    if (std::find(inc.begin(), inc.end(), name) != inc.end() ||
        std::find(exc.begin(), exc.end(), name) != exc.end()) {
      return Error(CoordinatorError::invalid_argument,
                   "group '" + std::string(name) + "' is still used by group '" + other + "'");
    }
  }
  const std::int64_t t = now();
  LAB_TRY_ASSIGN(auto tx, store_->begin());
  LAB_TRY(store_->run("DELETE FROM groups WHERE name = ?", name));
  LAB_TRY_ASSIGN(std::int64_t rev, store_->bump_revision());
  LAB_TRY(append_audit(*store_, {t, actor, "group.delete", std::string(name), {}}));
  auto apply = [&] { model_.groups.erase(model_.groups.find(name)); };
  LAB_TRY_ASSIGN(Deliveries d, commit(tx, rev, Dirty::everything(), apply));
  lock.unlock();
  deliver(std::move(d));
  return {};
}

}  // namespace lab::bootstrap::coordinator
