// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

namespace sluice::bench {

// Tallies the events of one run as a probe sees them: which of the expected sequence numbers
// arrived, how often, and how late. Not thread-safe: one probe thread feeds it.
class LatencyRecorder {
 public:
  explicit LatencyRecorder(uint64_t expected) : seen_(expected, 0) {}

  // `latency_us` may be negative by up to the clock resolution of the far end (Kafka's
  // LogAppendTime is in whole milliseconds); it is kept as measured.
  void Add(uint64_t seq, int64_t latency_us, int64_t at_us);

  uint64_t unique() const { return unique_; }
  uint64_t expected() const { return seen_.size(); }
  bool complete() const { return unique_ == seen_.size(); }

  // count, unique, duplicates, missing, out_of_range, first_us, last_us, latency_ms{p50,p99,
  // p999,max,mean}, and per_second: for each second of publish time from the first, its
  // {second, count, p99, max}, which tells a tail that is spread evenly (the path itself) from one
  // that comes in bursts (a stall somewhere). Percentiles are over first arrivals only.
  nlohmann::ordered_json Summary();

 private:
  std::vector<uint8_t> seen_;
  struct Sample {
    int64_t published_us;
    int64_t latency_us;
  };
  std::vector<Sample> samples_;
  uint64_t count_ = 0;
  uint64_t unique_ = 0;
  uint64_t duplicates_ = 0;
  uint64_t out_of_range_ = 0;
  int64_t first_us_ = 0;
  int64_t last_us_ = 0;
};

}  // namespace sluice::bench
