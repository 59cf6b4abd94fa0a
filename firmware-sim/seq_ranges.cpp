// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/seq_ranges.h"

namespace sluice::sim {

void SeqRanges::Add(uint64_t seq) {
  if (Contains(seq)) return;
  ++count_;
  auto next = by_first_.upper_bound(seq);  // first range starting after seq
  const bool joins_next = next != by_first_.end() && next->first == seq + 1;
  if (next != by_first_.begin()) {
    auto prev = std::prev(next);
    if (prev->second + 1 == seq) {
      prev->second = joins_next ? next->second : seq;
      if (joins_next) by_first_.erase(next);
      return;
    }
  }
  if (joins_next) {
    const uint64_t last = next->second;
    by_first_.erase(next);
    by_first_.emplace(seq, last);
    return;
  }
  by_first_.emplace(seq, seq);
}

bool SeqRanges::Contains(uint64_t seq) const {
  auto it = by_first_.upper_bound(seq);
  if (it == by_first_.begin()) return false;
  --it;
  return seq <= it->second;
}

std::vector<std::pair<uint64_t, uint64_t>> SeqRanges::ranges() const {
  return {by_first_.begin(), by_first_.end()};
}

}  // namespace sluice::sim
