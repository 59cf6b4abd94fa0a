// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <atomic>

namespace sluice {

// A value that goes up and down, for the metrics endpoint. Lock-free. Thread-safe.
class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double d) { value_.fetch_add(d, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

}  // namespace sluice
