// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <chrono>
#include <cstdint>

namespace sluice::sim {

// When each event of one device is due, as an offset from the fleet's start. The time of event k
// is a function of k alone (start + phase + k/rate for a regular profile), never of when earlier
// events were actually produced, so pacing does not drift however late the scheduler runs.
//
// Events come in bursts of `burst` events due at the same instant, one burst per period
// (burst / rate). An irregular schedule moves each burst to a seeded random point of its period,
// so its events are unevenly spaced while exactly one burst still falls in each period.
// Immutable, thread-safe.
class EventSchedule {
 public:
  // REQUIRES: rate > 0, burst >= 1, 0 <= phase.
  EventSchedule(double rate, int burst, std::chrono::nanoseconds phase, bool irregular,
                uint64_t seed);

  // When event `index` (0 for the first) is due. Non-decreasing in `index`.
  std::chrono::nanoseconds DueAt(uint64_t index) const;
  // How many events are due at or before `elapsed`: the number of k with DueAt(k) <= elapsed.
  uint64_t DueBy(std::chrono::nanoseconds elapsed) const;

  double rate() const { return rate_; }
  double period_seconds() const { return period_s_; }

 private:
  // Where burst `b` falls within its period, in [0, 1): 0 for a regular schedule.
  double Offset(uint64_t b) const;

  double rate_;
  int burst_;
  double period_s_;
  std::chrono::nanoseconds phase_;
  bool irregular_;
  uint64_t seed_;
};

}  // namespace sluice::sim
