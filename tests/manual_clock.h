// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "common/clock.h"

namespace sluice::testing {

// The tests' one fake clock. Time moves only by Advance() unless the clock follows real time:
// then it runs with the real clocks and Advance() adds to an offset, for code on threads of its
// own (a forwarder's loop) that must also see time pass while the test waits. Thread-safe.
class ManualClock final : public Clock {
 public:
  enum class Mode { kStill, kRealTime };
  // A fixed, recent wall-clock time (2025-11-24), so that ages computed from it are plausible.
  static constexpr int64_t kStartUnixMs = 1764000000000;

  explicit ManualClock(Mode mode = Mode::kStill, int64_t start_unix_ms = kStartUnixMs)
      : mode_(mode), start_unix_ms_(start_unix_ms) {}

  int64_t NowUnixMillis() const override {
    const int64_t base = mode_ == Mode::kRealTime
                             ? std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count()
                             : start_unix_ms_;
    return base + offset_ns_.load() / 1000000;
  }
  std::chrono::steady_clock::time_point Now() const override {
    const auto base = mode_ == Mode::kRealTime
                          ? std::chrono::steady_clock::now()
                          : std::chrono::steady_clock::time_point(std::chrono::hours(1));
    return base + std::chrono::nanoseconds(offset_ns_.load());
  }
  int64_t NowMillis() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Now().time_since_epoch()).count();
  }
  void Advance(std::chrono::nanoseconds d) { offset_ns_ += d.count(); }

 private:
  const Mode mode_;
  const int64_t start_unix_ms_;
  std::atomic<int64_t> offset_ns_{0};
};

}  // namespace sluice::testing
