// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/event_schedule.h"

#include <cmath>

#include "firmware-sim/prng.h"

namespace sluice::sim {

EventSchedule::EventSchedule(double rate, int burst, std::chrono::nanoseconds phase, bool irregular,
                             uint64_t seed)
    : rate_(rate),
      burst_(burst),
      period_s_(burst / rate),
      phase_(phase),
      irregular_(irregular),
      seed_(seed) {}

double EventSchedule::Offset(uint64_t b) const {
  // Stateless in b, so DueAt(k) needs no history and DueBy can probe any burst.
  return irregular_ ? Prng(Prng::Mix(seed_, b)).Uniform() : 0.0;
}

std::chrono::nanoseconds EventSchedule::DueAt(uint64_t index) const {
  const uint64_t b = index / static_cast<uint64_t>(burst_);
  // b + Offset(b) lies in [b, b + 1), so due times never decrease with the index.
  const double at_s = (static_cast<double>(b) + Offset(b)) * period_s_;
  return phase_ + std::chrono::nanoseconds(std::llround(at_s * 1e9));
}

uint64_t EventSchedule::DueBy(std::chrono::nanoseconds elapsed) const {
  if (elapsed < phase_) return 0;
  const double x = static_cast<double>((elapsed - phase_).count()) / 1e9 / period_s_;
  // Bursts before floor(x) are due whatever their offset; those from floor(x) + 1 on are not.
  // The boundary bursts are checked with DueAt itself, so that rounding can never make DueBy
  // and DueAt disagree.
  uint64_t b = static_cast<uint64_t>(x);
  b = b > 0 ? b - 1 : 0;
  while (DueAt(b * static_cast<uint64_t>(burst_)) <= elapsed) ++b;
  return b * static_cast<uint64_t>(burst_);
}

}  // namespace sluice::sim
