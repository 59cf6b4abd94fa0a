// SPDX-License-Identifier: Apache-2.0

#include "common/histogram.h"

#include <doctest/doctest.h>

#include <stdexcept>
#include <thread>
#include <vector>

namespace sluice {
namespace {

TEST_CASE("Histogram counts a value equal to a bound in that bound's bucket, cumulatively") {
  Histogram h({0.1, 1, 10});
  for (double v : {0.05, 0.1, 0.5, 1.0, 10.0, 10.5, 1e9}) h.Observe(v);
  const Histogram::Snapshot s = h.Collect();
  REQUIRE(s.upper_bounds == std::vector<double>{0.1, 1, 10});
  // <= 0.1: 0.05, 0.1; <= 1: + 0.5, 1.0; <= 10: + 10.0; +Inf: + 10.5, 1e9.
  CHECK(s.cumulative == std::vector<uint64_t>{2, 4, 5, 7});
  CHECK(s.count == 7);
  CHECK(s.sum == doctest::Approx(0.05 + 0.1 + 0.5 + 1.0 + 10.0 + 10.5 + 1e9));
}

TEST_CASE("Histogram without observations has zero buckets, count and sum") {
  Histogram h({1, 2});
  const Histogram::Snapshot s = h.Collect();
  CHECK(s.cumulative == std::vector<uint64_t>{0, 0, 0});
  CHECK(s.count == 0);
  CHECK(s.sum == 0);
}

TEST_CASE("Histogram refuses bounds that are not strictly increasing or not finite") {
  CHECK_THROWS_AS(Histogram({1, 1}), std::invalid_argument);
  CHECK_THROWS_AS(Histogram({2, 1}), std::invalid_argument);
  CHECK_THROWS_AS(Histogram({1, std::numeric_limits<double>::infinity()}), std::invalid_argument);
}

TEST_CASE("Histogram loses no observation from concurrent threads, read while they run") {
  Histogram h({1, 2, 3});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < kPerThread; ++i) h.Observe(static_cast<double>(t));
    });
  }
  // Every snapshot taken meanwhile is internally consistent: the count is the +Inf bucket and
  // the buckets never decrease.
  for (int i = 0; i < 100; ++i) {
    const Histogram::Snapshot s = h.Collect();
    CHECK(s.count == s.cumulative.back());
    for (size_t b = 1; b < s.cumulative.size(); ++b) CHECK(s.cumulative[b] >= s.cumulative[b - 1]);
  }
  for (auto& th : threads) th.join();
  const Histogram::Snapshot s = h.Collect();
  CHECK(s.cumulative ==
        std::vector<uint64_t>{2 * kPerThread, 3 * kPerThread, 4 * kPerThread, 4 * kPerThread});
  CHECK(s.sum == doctest::Approx((0.0 + 1 + 2 + 3) * kPerThread));
}

}  // namespace
}  // namespace sluice
