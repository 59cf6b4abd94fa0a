// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/counter.h"
#include "common/gauge.h"
#include "common/histogram.h"

namespace sluice {

// The metrics a process exposes, and their rendering in the Prometheus text exposition format,
// version 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/).
//
// A metric is either owned here (Counter, Gauge, Histogram: the registry hands out a pointer that
// stays valid for the registry's lifetime, and the part that counts keeps it) or read at scrape
// time through a function, for figures a part already keeps (its Stats()), so that counting them
// twice costs nothing on the hot path. Series of one name (a family) share HELP and TYPE and differ
// by their labels; families are rendered in the order of their first registration.
//
// Registration errors are programming errors (a bad name, a type clash within a family, the label
// "le" on a histogram) and throw std::invalid_argument. Thread-safe: registration and rendering
// take a mutex; the metrics themselves are lock-free. A function registered here must stay
// callable, and thread-safe, for as long as ExpositionText may be called.
class MetricsRegistry {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  Counter* AddCounter(const std::string& name, const std::string& help, Labels labels = {});
  Gauge* AddGauge(const std::string& name, const std::string& help, Labels labels = {});
  Histogram* AddHistogram(const std::string& name, const std::string& help,
                          std::vector<double> upper_bounds, Labels labels = {});
  // `read` returns the current total; it must never decrease (Prometheus takes a decrease for a
  // restart of the process).
  void AddCounterFunction(const std::string& name, const std::string& help, Labels labels,
                          std::function<double()> read);
  void AddGaugeFunction(const std::string& name, const std::string& help, Labels labels,
                        std::function<double()> read);

  // Every metric, rendered for Content-Type kContentType.
  std::string ExpositionText() const;

  static constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

  // Formatting rules of the text format, public for tests.
  static std::string EscapeHelp(const std::string& text);         // '\' and newline
  static std::string EscapeLabelValue(const std::string& value);  // '\', '"' and newline
  static std::string FormatValue(double v);                       // +Inf, -Inf, NaN, shortest

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Series {
    Labels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
    std::function<double()> read;
  };
  struct Family {
    std::string name;
    std::string help;
    Type type;
    std::vector<Series> series;
  };

  // REQUIRES: mu_ held. Validates and returns the family's new series.
  Series& AddSeriesLocked(const std::string& name, const std::string& help, Type type,
                          Labels labels);

  mutable std::mutex mu_;
  std::vector<Family> families_;  // GUARDED_BY(mu_)
};

}  // namespace sluice
