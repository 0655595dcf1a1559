#include "shared/metrics/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <variant>

namespace lab::shared::metrics {
namespace {

bool valid_name(std::string_view name, bool allow_colon) {
  if (name.empty())
    return false;
  auto ok = [&](char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (allow_colon && c == ':') || (!first && c >= '0' && c <= '9');
  };
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!ok(name[i], i == 0))
      return false;
  }
  return !name.starts_with("__");
}

void check_names(const std::string& name, const std::vector<std::string>& labels) {
  if (!valid_name(name, true))
    throw std::invalid_argument("metric name '" + name + "' breaks Prometheus' naming rules");
  for (const auto& l : labels) {
    if (!valid_name(l, false) || l == "le" || l == "quantile")
      throw std::invalid_argument(
          fmt::format("metric {}: label name '{}' is not allowed", name, l));
  }
}

// HELP text: backslash and newline escaped.
std::string escape_help(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string number(double v) {
  if (std::isnan(v))
    return "NaN";
  if (std::isinf(v))
    return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

// {a="x",b="y"} with an extra label (le) when given; empty for no labels.
std::string labels(const std::vector<std::string>& names, const std::vector<std::string>& values,
                   std::string_view extra_name = {}, std::string_view extra_value = {}) {
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < values.size(); ++i)
    out +=
        fmt::format("{}{}=\"{}\"", out.empty() ? "" : ",", names[i], escape_label_value(values[i]));
  if (!extra_name.empty())
    out += fmt::format("{}{}=\"{}\"", out.empty() ? "" : ",", extra_name, extra_value);
  return out.empty() ? out : "{" + out + "}";
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {
  if (!std::is_sorted(bounds_.begin(), bounds_.end()))
    throw std::invalid_argument("histogram bounds must be ascending");
}

void Histogram::observe(double v) noexcept {
  const auto at = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  buckets_[static_cast<std::size_t>(at)].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

struct Registry::Entry {
  std::string name;
  std::string help;
  std::string type;  // "counter", "gauge", "histogram"; empty for a part's own text
  std::variant<std::unique_ptr<Family<Counter>>, std::unique_ptr<Family<Gauge>>,
               std::unique_ptr<Family<Histogram>>, std::function<double()>,
               std::function<std::string()>>
      metric;
};

Registry::Registry() = default;
Registry::~Registry() = default;

void Registry::add(std::unique_ptr<Entry> entry) {
  const std::lock_guard lock(mutex_);
  for (const auto& e : entries_) {
    if (!entry->name.empty() && e->name == entry->name)
      throw std::invalid_argument("metric " + entry->name + " registered twice");
  }
  entries_.push_back(std::move(entry));
}

Family<Counter>& Registry::counter(const std::string& name, const std::string& help,
                                   std::vector<std::string> label_names) {
  check_names(name, label_names);
  if (!name.ends_with("_total"))
    throw std::invalid_argument("counter " + name + " must end in _total");
  auto family = std::make_unique<Family<Counter>>(std::move(label_names),
                                                  [] { return std::make_unique<Counter>(); });
  auto& ref = *family;
  add(std::make_unique<Entry>(Entry{name, help, "counter", std::move(family)}));
  return ref;
}

Family<Gauge>& Registry::gauge(const std::string& name, const std::string& help,
                               std::vector<std::string> label_names) {
  check_names(name, label_names);
  auto family = std::make_unique<Family<Gauge>>(std::move(label_names),
                                                [] { return std::make_unique<Gauge>(); });
  auto& ref = *family;
  add(std::make_unique<Entry>(Entry{name, help, "gauge", std::move(family)}));
  return ref;
}

Family<Histogram>& Registry::histogram(const std::string& name, const std::string& help,
                                       std::vector<std::string> label_names,
                                       std::vector<double> upper_bounds) {
  check_names(name, label_names);
  Histogram probe(upper_bounds);  // checks the bounds now, not at first use
  auto family = std::make_unique<Family<Histogram>>(
      std::move(label_names),
      [bounds = std::move(upper_bounds)] { return std::make_unique<Histogram>(bounds); });
  auto& ref = *family;
  add(std::make_unique<Entry>(Entry{name, help, "histogram", std::move(family)}));
  return ref;
}

void Registry::gauge_callback(const std::string& name, const std::string& help,
                              std::function<double()> read) {
  check_names(name, {});
  add(std::make_unique<Entry>(Entry{name, help, "gauge", std::move(read)}));
}

void Registry::text(std::function<std::string()> render) {
  add(std::make_unique<Entry>(Entry{"", "", "", std::move(render)}));
}

std::string Registry::render() const {
  const std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& e : entries_) {
    if (const auto* t = std::get_if<std::function<std::string()>>(&e->metric)) {
      out += (*t)();
      continue;
    }
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", e->name, escape_help(e->help), e->name,
                       e->type);
    if (const auto* c = std::get_if<std::unique_ptr<Family<Counter>>>(&e->metric)) {
      (*c)->for_each([&](const std::vector<std::string>& values, const Counter& m) {
        out += fmt::format("{}{} {}\n", e->name, labels((*c)->label_names(), values), m.value());
      });
    } else if (const auto* g = std::get_if<std::unique_ptr<Family<Gauge>>>(&e->metric)) {
      (*g)->for_each([&](const std::vector<std::string>& values, const Gauge& m) {
        out += fmt::format("{}{} {}\n", e->name, labels((*g)->label_names(), values),
                           number(m.value()));
      });
    } else if (const auto* h = std::get_if<std::unique_ptr<Family<Histogram>>>(&e->metric)) {
      (*h)->for_each([&](const std::vector<std::string>& values, const Histogram& m) {
        const auto s = m.snapshot();
        const auto& names = (*h)->label_names();
        for (std::size_t i = 0; i < s.bounds.size(); ++i) {
          out += fmt::format("{}_bucket{} {}\n", e->name,
                             labels(names, values, "le", number(s.bounds[i])), s.cumulative[i]);
        }
        out +=
            fmt::format("{}_bucket{} {}\n", e->name, labels(names, values, "le", "+Inf"), s.count);
        out += fmt::format("{}_sum{} {}\n", e->name, labels(names, values), number(s.sum));
        out += fmt::format("{}_count{} {}\n", e->name, labels(names, values), s.count);
      });
    } else if (const auto* f = std::get_if<std::function<double()>>(&e->metric)) {
      out += fmt::format("{} {}\n", e->name, number((*f)()));
    }
  }
  return out;
}

std::string escape_label_value(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::vector<double> latency_buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

}  // namespace lab::shared::metrics
