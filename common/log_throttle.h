// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

namespace sluice {

// Decides when a repeated log line may be written again: at most once per interval, with the
// number of occurrences suppressed since. Keeps a misbehaving device or a broker outage from
// flooding the log (and the SD card) with one line per event. Thread-safe.
class LogThrottle {
 public:
  explicit LogThrottle(std::chrono::steady_clock::duration interval) : interval_(interval) {}

  // True if a line may be written now; *suppressed gets how many calls since the last line were
  // refused.
  bool Allow(uint64_t* suppressed) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    if (logged_once_ && now - last_ < interval_) {
      ++suppressed_;
      return false;
    }
    logged_once_ = true;
    last_ = now;
    *suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }

 private:
  std::mutex mu_;
  const std::chrono::steady_clock::duration interval_;
  std::chrono::steady_clock::time_point last_{};
  bool logged_once_ = false;
  uint64_t suppressed_ = 0;
};

}  // namespace sluice
