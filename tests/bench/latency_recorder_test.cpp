// SPDX-License-Identifier: Apache-2.0

#include "bench/latency_recorder.h"

#include <doctest/doctest.h>

namespace sluice::bench {
namespace {

TEST_CASE("LatencyRecorder counts first arrivals and tells which second a tail came from") {
  LatencyRecorder rec(300);
  const int64_t t0 = 1'000'000'000;
  // Seconds 0 and 2 run at 5 ms; second 1 holds one event 80 ms late.
  for (uint64_t k = 0; k < 300; ++k) {
    const int64_t published = t0 + static_cast<int64_t>(k) * 10'000;
    const int64_t latency = k == 150 ? 80'000 : 5'000;
    rec.Add(k, latency, published + latency);
  }
  rec.Add(7, 9'000, t0 + 100'000);   // a duplicate: counted, not measured
  rec.Add(999, 1'000, t0 + 10'000);  // not a sequence number of this run
  const auto j = rec.Summary();
  CHECK(j["unique"] == 300);
  CHECK(j["duplicates"] == 1);
  CHECK(j["out_of_range"] == 1);
  CHECK(j["missing"] == 0);
  CHECK(j["latency_ms"]["p50"] == 5.0);
  CHECK(j["latency_ms"]["max"] == 80.0);
  const auto& s = j["per_second"];
  REQUIRE(s.size() == 3);
  CHECK(s[0]["second"] == 0);
  CHECK(s[0]["count"] == 100);
  CHECK(s[0]["max"] == 5.0);
  CHECK(s[1]["max"] == 80.0);
  CHECK(s[1]["p99"] == 5.0);  // one of 100: the 99th percentile is the rest
  CHECK(s[2]["max"] == 5.0);
}

TEST_CASE("LatencyRecorder with nothing measured has no percentiles and no seconds") {
  LatencyRecorder rec(10);
  const auto j = rec.Summary();
  CHECK(j["missing"] == 10);
  CHECK(j["latency_ms"].empty());
  CHECK(j["per_second"].empty());
}

}  // namespace
}  // namespace sluice::bench
