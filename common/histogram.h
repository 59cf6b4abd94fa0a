// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace sluice {

// A distribution of observed values (latencies in seconds, say) over fixed buckets, as Prometheus
// histograms have them: each bucket counts the observations <= its upper bound, and a last bucket
// (+Inf) takes the rest.
//
// Observe is lock-free (a short search over the bounds and two relaxed atomic adds), so that it
// may run once per event on the forwarding path. Collect may run concurrently with Observe; it
// then sees every observation either fully or not at all in the bucket counts and the count, and
// the sum may be a few observations ahead or behind. Thread-safe.
class Histogram {
 public:
  // REQUIRES: `upper_bounds` finite and strictly increasing (checked: std::invalid_argument).
  explicit Histogram(std::vector<double> upper_bounds);

  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void Observe(double value);

  struct Snapshot {
    std::vector<double> upper_bounds;  // without +Inf
    // cumulative[i]: observations <= upper_bounds[i]; one more entry for +Inf, equal to count.
    std::vector<uint64_t> cumulative;
    uint64_t count = 0;
    double sum = 0;
  };
  Snapshot Collect() const;

  const std::vector<double>& upper_bounds() const { return bounds_; }

 private:
  const std::vector<double> bounds_;
  // Per bucket, not cumulative, so that Observe touches one counter; the last one is +Inf.
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0.0};
};

}  // namespace sluice
