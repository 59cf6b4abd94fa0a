// SPDX-License-Identifier: Apache-2.0

#include "common/backoff.h"

#include <algorithm>

namespace sluice {

Backoff::Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max, uint64_t seed)
    : min_(min), max_(std::max(min, max)), state_(seed * 2654435761u + 0x9E3779B97F4A7C15ull) {}

std::chrono::milliseconds Backoff::Next() {
  // The ceiling doubles per attempt; the delay is drawn in [ceiling/2, ceiling] so that many
  // gateways restarted together do not reconnect in lockstep, yet never retry faster than min.
  const int shift = std::min(attempt_, 30);
  ++attempt_;
  const int64_t cap = std::min<int64_t>(max_.count(), min_.count() * (int64_t{1} << shift));
  state_ ^= state_ << 13;
  state_ ^= state_ >> 7;
  state_ ^= state_ << 17;
  const int64_t half = cap / 2;
  const int64_t span = cap - half;
  const int64_t jittered = half + (span > 0 ? static_cast<int64_t>(state_ % (span + 1)) : 0);
  return std::chrono::milliseconds(std::max<int64_t>(jittered, min_.count()));
}

}  // namespace sluice
