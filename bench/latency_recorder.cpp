// SPDX-License-Identifier: Apache-2.0

#include "bench/latency_recorder.h"

#include <algorithm>
#include <map>
#include <numeric>

namespace sluice::bench {
namespace {

// p50, p99, p999 and max of `values` in ms (sorts them). Nearest rank: the smallest value with at
// least p of the samples at or below it.
nlohmann::ordered_json Percentiles(std::vector<int64_t>* values) {
  std::sort(values->begin(), values->end());
  auto at = [&](double p) {
    size_t rank = static_cast<size_t>(p * static_cast<double>(values->size()) + 0.999999);
    rank = std::clamp<size_t>(rank, 1, values->size());
    return static_cast<double>((*values)[rank - 1]) / 1000.0;
  };
  nlohmann::ordered_json j;
  j["p50"] = at(0.50);
  j["p99"] = at(0.99);
  j["p999"] = at(0.999);
  j["max"] = static_cast<double>(values->back()) / 1000.0;
  return j;
}

}  // namespace

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
  samples_.push_back({at_us - latency_us, latency_us});
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
  std::vector<int64_t> all;
  all.reserve(samples_.size());
  for (const Sample& x : samples_) all.push_back(x.latency_us);
  if (!all.empty()) {
    lat = Percentiles(&all);
    const double sum = std::accumulate(all.begin(), all.end(), 0.0);
    lat["mean"] = sum / static_cast<double>(all.size()) / 1000.0;
  }
  j["latency_ms"] = lat;
  nlohmann::ordered_json seconds = nlohmann::ordered_json::array();
  if (!samples_.empty()) {
    int64_t start = samples_.front().published_us;
    for (const Sample& x : samples_) start = std::min(start, x.published_us);
    std::map<int64_t, std::vector<int64_t>> by_second;
    for (const Sample& x : samples_) {
      by_second[(x.published_us - start) / 1'000'000].push_back(x.latency_us);
    }
    for (auto& [second, values] : by_second) {
      nlohmann::ordered_json w = Percentiles(&values);
      seconds.push_back(
          {{"second", second}, {"count", values.size()}, {"p99", w["p99"]}, {"max", w["max"]}});
    }
  }
  j["per_second"] = seconds;
  return j;
}

}  // namespace sluice::bench
