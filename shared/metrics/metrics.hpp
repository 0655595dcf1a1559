#pragma once
// Metrics in the Prometheus text exposition format (version 0.0.4), the convention of the
// ecosystem operators scrape with. Counters, gauges and histograms are lock-free to update, so
// the DHCP, TFTP and HTTP hot paths can count without a mutex; a family's children (one per label
// value set) are made on first use and never move, so a caller resolves them once and keeps the
// reference. Rendering takes a snapshot under the registry's mutex.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace lab::shared::metrics {

class Counter {
 public:
  void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t value() const noexcept {
    return value_.load(std::memory_order_relaxed);
  }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class Gauge {
 public:
  void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
  void add(double d) noexcept { value_.fetch_add(d, std::memory_order_relaxed); }
  [[nodiscard]] double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

/// Observations counted in buckets with the given upper bounds (ascending; +Inf is implied).
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v) noexcept;

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<std::uint64_t> cumulative;  // per bound, then +Inf
    double sum = 0;
    std::uint64_t count = 0;
  };
  [[nodiscard]] Snapshot snapshot() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // per bound, then +Inf
  std::atomic<double> sum_{0};
};

/// The metrics of one name, one child per set of label values.
template <class Metric>
class Family {
 public:
  Family(std::vector<std::string> label_names, std::function<std::unique_ptr<Metric>()> make)
      : label_names_(std::move(label_names)), make_(std::move(make)) {}

  /// The child for these label values (as many as the family has label names), made on first
  /// use; the reference stays valid as long as the registry.
  Metric& with(const std::vector<std::string>& label_values) {
    const std::lock_guard lock(mutex_);
    auto& slot = children_[label_values];
    if (!slot)
      slot = make_();
    return *slot;
  }
  /// The child of a family without labels.
  Metric& get() { return with({}); }

  [[nodiscard]] const std::vector<std::string>& label_names() const { return label_names_; }
  template <class F>
  void for_each(F&& f) const {
    const std::lock_guard lock(mutex_);
    for (const auto& [values, metric] : children_)
      f(values, *metric);
  }

 private:
  std::vector<std::string> label_names_;
  std::function<std::unique_ptr<Metric>()> make_;
  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> children_;
};

/// Every metric of a process (or of one part of it), rendered in registration order.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  /// Names follow Prometheus' rules ([a-zA-Z_:][a-zA-Z0-9_:]*, labels without ':'); a counter's
  /// name ends in _total. A name registered twice, or an invalid one, throws
  /// std::invalid_argument: a programming error, found by the first test that starts the part.
  Family<Counter>& counter(const std::string& name, const std::string& help,
                           std::vector<std::string> label_names = {});
  Family<Gauge>& gauge(const std::string& name, const std::string& help,
                       std::vector<std::string> label_names = {});
  Family<Histogram>& histogram(const std::string& name, const std::string& help,
                               std::vector<std::string> label_names,
                               std::vector<double> upper_bounds);
  /// A gauge read when scraped (a pool's addresses in use, open transfers); `read` runs under
  /// the registry's mutex and must not call back into it.
  void gauge_callback(const std::string& name, const std::string& help,
                      std::function<double()> read);

  /// Families a part renders itself, in the text format (HELP, TYPE and samples), appended
  /// in registration order: for parts that keep their figures in their own structures. Their
  /// names are the part's to keep apart from the registry's.
  void text(std::function<std::string()> render);

  /// The text exposition format: # HELP, # TYPE and the samples of every family.
  [[nodiscard]] std::string render() const;

 private:
  struct Entry;
  void add(std::unique_ptr<Entry> entry);
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Entry>> entries_;
};

/// A label value as the text format writes it: backslash, double quote and newline escaped.
/// For parts that render their own text (Registry::text, labd's /metrics).
std::string escape_label_value(std::string_view text);

/// Seconds buckets for latencies from 100 µs to 10 s.
std::vector<double> latency_buckets();

}  // namespace lab::shared::metrics
