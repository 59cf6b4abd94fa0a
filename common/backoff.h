// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <chrono>
#include <cstdint>

namespace sluice {

// Exponential backoff with full jitter between a floor and a ceiling, used by every connector
// that retries a peer. Not thread-safe: each retry loop owns one.
class Backoff {
 public:
  Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max, uint64_t seed = 0);

  // The delay to wait before the next attempt; grows with each call until Reset().
  std::chrono::milliseconds Next();
  void Reset() { attempt_ = 0; }
  int attempts() const { return attempt_; }

 private:
  std::chrono::milliseconds min_;
  std::chrono::milliseconds max_;
  int attempt_ = 0;
  uint64_t state_;
};

}  // namespace sluice
