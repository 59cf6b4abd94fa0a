// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/seq_ranges.h"

#include <doctest/doctest.h>

namespace sluice::sim {
namespace {

using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;

TEST_CASE("SeqRanges merges adjacent seqs added in any order") {
  SeqRanges r;
  for (uint64_t s : {5, 3, 4, 10, 12, 11, 1, 20, 19}) r.Add(s);
  CHECK(r.ranges() == Ranges{{1, 1}, {3, 5}, {10, 12}, {19, 20}});
  CHECK(r.count() == 9);
  r.Add(2);  // bridges two ranges
  CHECK(r.ranges() == Ranges{{1, 5}, {10, 12}, {19, 20}});
  r.Add(4);  // already present
  CHECK(r.count() == 10);
  CHECK(r.Contains(11));
  CHECK_FALSE(r.Contains(13));
  CHECK_FALSE(r.Contains(0));
}

}  // namespace
}  // namespace sluice::sim
