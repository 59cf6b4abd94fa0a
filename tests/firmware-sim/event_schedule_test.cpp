// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/event_schedule.h"

#include <doctest/doctest.h>

#include <chrono>

namespace sluice::sim {
namespace {

using namespace std::chrono_literals;

TEST_CASE("EventSchedule puts event k at phase + k/rate, computed from k alone") {
  const EventSchedule s(10.0, 1, 30ms, false, 1);
  CHECK(s.DueAt(0) == 30ms);
  CHECK(s.DueAt(1) == 130ms);
  CHECK(s.DueAt(10) == 1030ms);
  // Far out, still exact: no accumulated error from adding periods one by one.
  CHECK(s.DueAt(36'000'000) == std::chrono::nanoseconds(3'600'000'030'000'000));
}

TEST_CASE("EventSchedule counts the events due by a time") {
  const EventSchedule s(10.0, 1, 30ms, false, 1);
  CHECK(s.DueBy(0ms) == 0);
  CHECK(s.DueBy(29ms) == 0);
  CHECK(s.DueBy(30ms) == 1);
  CHECK(s.DueBy(129ms) == 1);
  CHECK(s.DueBy(130ms) == 2);
  CHECK(s.DueBy(1s) == 10);
  CHECK(s.DueBy(60s) == 600);
}

TEST_CASE("EventSchedule releases bursts together at the average rate") {
  // 16 events/s in bursts of 8: a burst every 500 ms.
  const EventSchedule s(16.0, 8, 0ms, false, 1);
  for (uint64_t k = 0; k < 8; ++k) CHECK(s.DueAt(k) == 0ms);
  CHECK(s.DueAt(8) == 500ms);
  CHECK(s.DueBy(499ms) == 8);
  CHECK(s.DueBy(500ms) == 16);
  CHECK(s.DueBy(10s - 1ns) == 160);
}

TEST_CASE("EventSchedule irregular timing keeps one burst per period and stays monotonic") {
  const EventSchedule s(2.0, 1, 0ms, true, 77);
  std::chrono::nanoseconds prev{-1};
  bool uneven = false;
  for (uint64_t k = 0; k < 1000; ++k) {
    const auto at = s.DueAt(k);
    CHECK(at >= prev);
    CHECK(at >= std::chrono::nanoseconds(k * 500'000'000));  // within its own period
    CHECK(at < std::chrono::nanoseconds((k + 1) * 500'000'000));
    if (k > 0 && at - prev != 500ms) uneven = true;
    prev = at;
    // DueBy agrees with DueAt at every event and just before it.
    CHECK(s.DueBy(at) >= k + 1);
    CHECK(s.DueBy(at - 1ns) <= k);
  }
  CHECK(uneven);
  CHECK(s.DueBy(500s) == 1000);
  // A different seed moves the events.
  const EventSchedule other(2.0, 1, 0ms, true, 78);
  CHECK(other.DueAt(5) != s.DueAt(5));
}

}  // namespace
}  // namespace sluice::sim
