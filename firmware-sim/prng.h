// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstdint>

namespace sluice::sim {

// A small seeded pseudo-random generator (SplitMix64) whose output is fixed by the seed on every
// platform and standard library, unlike std::uniform_*_distribution: the same --seed must give
// byte-identical payloads wherever the simulator runs. Not thread-safe: each user owns one.
class Prng {
 public:
  explicit Prng(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  // Uniform in [0, 1), from the top 53 bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

  double Range(double lo, double hi) { return lo + (hi - lo) * Uniform(); }

  // Uniform in [0, n). REQUIRES: n > 0. The modulo bias, below n / 2^64, is of no consequence
  // for the small n a simulator draws from.
  uint64_t Below(uint64_t n) { return Next() % n; }

  // A seed derived from two values, so that each device (and each use within a device) gets its
  // own independent stream from the one fleet seed.
  static uint64_t Mix(uint64_t a, uint64_t b) {
    Prng p(a ^ (b * 0xD6E8FEB86659FD93ull));
    p.Next();
    return p.Next();
  }

 private:
  uint64_t state_;
};

}  // namespace sluice::sim
