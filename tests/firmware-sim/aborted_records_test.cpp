// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/aborted_records.h"

#include <doctest/doctest.h>

namespace sluice::sim {
namespace {

// One partition as sluice's exactly-once sink leaves it: a committed transaction at 0-2 (commit
// marker at 3), an aborted one at 4-6 (abort marker at 7), the same events committed again at
// 8-10 (marker at 11). A read_committed read returns 0-2 and 8-10; a read_uncommitted read
// returns 0-2, 4-6 and 8-10; neither returns a marker.
TEST_CASE("AbortedRecords counts what only the uncommitted read returned") {
  AbortedRecords a;
  for (int64_t o : {0, 1, 2, 8, 9, 10}) a.AddCommitted("t", 0, o);
  int flagged = 0;
  for (int64_t o : {0, 1, 2, 4, 5, 6, 8, 9, 10}) flagged += a.AddUncommitted("t", 0, o) ? 1 : 0;
  CHECK(flagged == 3);
  CHECK(a.aborted() == 3);
  CHECK(a.confirmed() == 6);
}

TEST_CASE("AbortedRecords keeps topics and partitions apart") {
  AbortedRecords a;
  a.AddCommitted("t", 0, 5);
  a.AddCommitted("gaps", 1, 7);
  // The same offsets elsewhere were not read committed.
  CHECK(a.AddUncommitted("t", 1, 5));
  CHECK(a.AddUncommitted("gaps", 0, 7));
  CHECK(a.AddUncommitted("u", 0, 5));
  CHECK_FALSE(a.AddUncommitted("t", 0, 5));
  CHECK_FALSE(a.AddUncommitted("gaps", 1, 7));
  CHECK(a.aborted() == 3);
  CHECK(a.confirmed() == 2);
}

TEST_CASE("AbortedRecords counts a record read twice once") {
  AbortedRecords a;
  a.AddCommitted("t", 0, 0);
  a.AddCommitted("t", 0, 0);
  CHECK(a.AddUncommitted("t", 0, 1));
  CHECK(a.AddUncommitted("t", 0, 1));  // still aborted, not counted again
  CHECK_FALSE(a.AddUncommitted("t", 0, 0));
  CHECK_FALSE(a.AddUncommitted("t", 0, 0));
  CHECK(a.aborted() == 1);
  CHECK(a.confirmed() == 1);
}

TEST_CASE("AbortedRecords with no transactions finds nothing aborted") {
  AbortedRecords a;
  for (int64_t o = 0; o < 1000; ++o) a.AddCommitted("t", 2, o);
  for (int64_t o = 0; o < 1000; ++o) CHECK_FALSE(a.AddUncommitted("t", 2, o));
  CHECK(a.aborted() == 0);
  CHECK(a.confirmed() == 1000);
}

}  // namespace
}  // namespace sluice::sim
