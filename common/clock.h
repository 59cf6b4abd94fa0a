// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <chrono>
#include <cstdint>

namespace sluice {

// Time as the rest of the code sees it, injected so that tests can move it by hand.
// Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time in milliseconds since the Unix epoch: what goes into event records.
  virtual int64_t NowUnixMillis() const = 0;
  // Monotonic time, for deadlines and intervals.
  virtual std::chrono::steady_clock::time_point Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowUnixMillis() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  std::chrono::steady_clock::time_point Now() const override {
    return std::chrono::steady_clock::now();
  }
};

}  // namespace sluice
