#include "agent/checks/scheduler.hpp"

#include <algorithm>

namespace lab::agent::checks {

Spec spec_of(const shared::protocol::Check& check) {
  Spec s;
  s.name = check.name;
  s.timeout = std::chrono::seconds(check.timeout_seconds);
  if (check.kind == "http") {
    s.kind = Kind::http;
    s.url = check.url;
    s.expect_status = static_cast<unsigned>(check.expect_status);
    s.expect_body = check.expect_body;
  } else if (check.kind == "tcp") {
    s.kind = Kind::tcp;
    const auto colon = check.address.rfind(':');
    std::string host = check.address.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
      host = host.substr(1, host.size() - 2);
    s.host = host;
    s.port = static_cast<std::uint16_t>(std::stoi(check.address.substr(colon + 1)));
  } else {
    s.kind = Kind::command;
    s.argv = check.command;
    s.shell = check.shell;
    s.user = check.user;
  }
  return s;
}

std::string Damper::next(const std::string& status, bool passed, std::int64_t rise,
                         std::int64_t fall) {
  if (passed) {
    ++passes;
    fails = 0;
    if (status != "passing" && passes >= rise)
      return "passing";
  } else {
    ++fails;
    passes = 0;
    if (status != "failing" && fails >= fall)
      return "failing";
  }
  return status;
}

Scheduler::Scheduler(std::function<std::int64_t()> now, OnResult on_result, std::size_t max_workers)
    : now_(std::move(now)), on_result_(std::move(on_result)), max_workers_(max_workers) {}

Scheduler::~Scheduler() {
  stop();
  for (auto& w : workers_) {
    if (w.joinable())
      w.join();
  }
}

bool Scheduler::join_for(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (!ended_.wait_for(lock, timeout, [&] { return working_ == 0; }))
    return false;
  lock.unlock();
  for (auto& w : workers_) {
    if (w.joinable())
      w.join();
  }
  return true;
}

void Scheduler::stop() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
}

void Scheduler::restore(const std::vector<shared::protocol::CheckResult>& results) {
  const std::lock_guard lock(mutex_);
  for (const auto& r : results)
    restored_[r.name] = r;
}

void Scheduler::set_checks(const std::vector<shared::protocol::Check>& checks) {
  {
    const std::lock_guard lock(mutex_);
    if (stopping_)
      return;
    std::map<std::string, Entry, std::less<>> next;
    const auto now = std::chrono::steady_clock::now();
    for (const auto& c : checks) {
      auto old = entries_.find(c.name);
      if (old != entries_.end() && old->second.check == c) {
        next.emplace(c.name, std::move(old->second));
        continue;
      }
      Entry e;
      e.check = c;
      e.due = now;
      e.result.name = c.name;
      e.result.status = "pending";
      e.result.since = now_();
      if (auto r = restored_.find(c.name); r != restored_.end() && old == entries_.end()) {
        // Same definition across a restart is unknowable (the cache keeps results, not
        // definitions); the remembered state is kept until the damping says otherwise.
        e.result = r->second;
      }
      if (old != entries_.end())
        e.generation = old->second.generation + 1;
      e.running = old != entries_.end() && old->second.running;
      next.emplace(c.name, std::move(e));
    }
    entries_ = std::move(next);
    restored_.clear();
    // Workers leave when the last check goes (each holds a stack and its share of the heap);
    // once all have, they are joined here before new ones start. join() does not wait for the
    // lock: a worker counts itself out under it, then only returns.
    if (working_ == 0) {
      for (auto& w : workers_)
        w.join();
      workers_.clear();
    }
    const std::size_t want = std::min(max_workers_, entries_.size());
    while (working_ < want) {
      ++working_;
      workers_.emplace_back([this] { work(); });
    }
  }
  wake_.notify_all();
}

std::size_t Scheduler::workers() const {
  const std::lock_guard lock(mutex_);
  return working_;
}

std::vector<shared::protocol::CheckResult> Scheduler::results() const {
  const std::lock_guard lock(mutex_);
  std::vector<shared::protocol::CheckResult> out;
  out.reserve(entries_.size());
  for (const auto& [name, e] : entries_)
    out.push_back(e.result);
  return out;
}

void Scheduler::work() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    // The earliest due check nobody is running.
    Entry* next = nullptr;
    for (auto& [name, e] : entries_) {
      if (!e.running && (next == nullptr || e.due < next->due))
        next = &e;
    }
    const auto now = std::chrono::steady_clock::now();
    if (entries_.empty())
      break;
    if (next == nullptr) {
      wake_.wait(lock);
      continue;
    }
    if (next->due > now) {
      // A copy: set_checks() may replace the entry while this waits.
      const auto due = next->due;
      wake_.wait_until(lock, due);
      continue;
    }
    next->running = true;
    const shared::protocol::Check check = next->check;
    const std::uint64_t generation = next->generation;
    lock.unlock();
    const Outcome outcome = run(spec_of(check));
    lock.lock();
    auto it = entries_.find(check.name);
    if (it == entries_.end() || it->second.generation != generation) {
      if (it != entries_.end())
        it->second.running = false;  // redefined meanwhile: this result is of the old one
      continue;
    }
    Entry& e = it->second;
    e.running = false;
    e.due = std::chrono::steady_clock::now() + std::chrono::seconds(check.interval_seconds);
    const std::string status =
        e.damper.next(e.result.status, outcome.passed, check.rise, check.fall);
    const bool changed = status != e.result.status;
    const std::int64_t t = now_();
    if (changed)
      e.result.since = t;
    e.result.status = status;
    e.result.checked_at = t;
    e.result.duration_ms = outcome.duration.count();
    e.result.reason = outcome.reason.substr(0, shared::protocol::kMaxCheckReason);
    e.result.output = outcome.output.substr(0, shared::protocol::kMaxCheckOutput);
    const shared::protocol::CheckResult result = e.result;
    lock.unlock();
    if (on_result_)
      on_result_(result, changed);
    lock.lock();
  }
  --working_;
  ended_.notify_all();
}

}  // namespace lab::agent::checks
