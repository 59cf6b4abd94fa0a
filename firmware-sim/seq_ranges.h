// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

namespace sluice::sim {

// A set of sequence numbers kept as disjoint, merged, inclusive ranges: how the summary lists the
// events a device dropped. Seqs may be added in any order; adding one twice changes nothing.
// Thread-compatible.
class SeqRanges {
 public:
  void Add(uint64_t seq);

  // Sorted, non-overlapping, non-adjacent [first, last] pairs.
  std::vector<std::pair<uint64_t, uint64_t>> ranges() const;
  uint64_t count() const { return count_; }
  bool empty() const { return count_ == 0; }
  bool Contains(uint64_t seq) const;

 private:
  std::map<uint64_t, uint64_t> by_first_;  // first -> last
  uint64_t count_ = 0;
};

}  // namespace sluice::sim
