// SPDX-License-Identifier: Apache-2.0

#include "bench/latency_recorder.h"

#include <algorithm>

namespace sluice::bench {

void LatencyRecorder::Add(uint64_t seq, int64_t latency_us, int64_t at_us) {
  ++count_;
  if (first_us_ == 0) first_us_ = at_us;
  last_us_ = std::max(last_us_, at_us);
  if (seq >= seen_.size()) {
    ++out_of_range_;
    return;
  }
  if (seen_[seq] != 0) {
    ++duplicates_;
    return;
  }
  seen_[seq] = 1;
  ++unique_;
  latencies_us_.push_back(latency_us);
}

nlohmann::ordered_json LatencyRecorder::Summary() {
  nlohmann::ordered_json j;
  j["expected"] = seen_.size();
  j["count"] = count_;
  j["unique"] = unique_;
  j["duplicates"] = duplicates_;
  j["missing"] = seen_.size() - unique_;
  j["out_of_range"] = out_of_range_;
  j["first_us"] = first_us_;
  j["last_us"] = last_us_;
  nlohmann::ordered_json lat;
  if (!latencies_us_.empty()) {
    std::sort(latencies_us_.begin(), latencies_us_.end());
    // Nearest-rank percentile: the smallest value with at least p of the samples at or below it.
    auto at = [&](double p) {
      size_t rank = static_cast<size_t>(p * static_cast<double>(latencies_us_.size()) + 0.999999);
      rank = std::clamp<size_t>(rank, 1, latencies_us_.size());
      return static_cast<double>(latencies_us_[rank - 1]) / 1000.0;
    };
    double sum = 0;
    for (int64_t v : latencies_us_) sum += static_cast<double>(v);
    lat["p50"] = at(0.50);
    lat["p99"] = at(0.99);
    lat["p999"] = at(0.999);
    lat["max"] = static_cast<double>(latencies_us_.back()) / 1000.0;
    lat["mean"] = sum / static_cast<double>(latencies_us_.size()) / 1000.0;
  }
  j["latency_ms"] = lat;
  return j;
}

}  // namespace sluice::bench
