// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/device_queue.h"

#include <doctest/doctest.h>

namespace sluice::sim {
namespace {

using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;

OutgoingEvent Ev(uint32_t boot, uint64_t seq) {
  return {boot, seq, "p" + std::to_string(boot) + "." + std::to_string(seq)};
}

Ranges DroppedIn(const DeviceQueue& q, uint32_t boot) {
  auto it = q.dropped().find(boot);
  return it == q.dropped().end() ? Ranges{} : it->second.ranges();
}

TEST_CASE("DeviceQueue drops the oldest waiting event when full and reports the ranges") {
  DeviceQueue q(3, 10);
  for (uint64_t s = 1; s <= 8; ++s) q.Push(Ev(1, s));
  CHECK(q.waiting() == 3);
  CHECK(q.dropped_overflow() == 5);
  CHECK(q.dropped_total() == 5);
  CHECK(DroppedIn(q, 1) == Ranges{{1, 5}});
  // What is left is the newest three, oldest first.
  REQUIRE(q.CanSend());
  CHECK(q.StartSend(1).seq == 6);
  CHECK(q.StartSend(2).seq == 7);
  CHECK(q.StartSend(3).seq == 8);
  CHECK_FALSE(q.CanSend());
}

TEST_CASE("DeviceQueue counts an event sent only when confirmed") {
  DeviceQueue q(10, 10);
  q.Push(Ev(1, 1));
  q.Push(Ev(1, 2));
  const OutgoingEvent& e = q.StartSend(100);
  CHECK(e.payload == "p1.1");
  CHECK(q.in_flight() == 1);
  CHECK(q.sent() == 0);
  CHECK(q.Confirm(100));
  CHECK(q.sent() == 1);
  CHECK_FALSE(q.Confirm(100));  // a late duplicate report changes nothing
  CHECK(q.sent() == 1);
  CHECK(q.waiting() == 1);
}

TEST_CASE("DeviceQueue keeps at most `window` events in flight") {
  DeviceQueue q(100, 4);
  for (uint64_t s = 1; s <= 10; ++s) q.Push(Ev(1, s));
  uint64_t tag = 1;
  while (q.CanSend()) q.StartSend(tag++);
  CHECK(q.in_flight() == 4);
  CHECK(q.waiting() == 6);
  q.Confirm(2);
  CHECK(q.CanSend());
  q.StartSend(tag++);
  CHECK_FALSE(q.CanSend());
}

TEST_CASE("DeviceQueue puts a failed event of the current boot back in seq order") {
  DeviceQueue q(10, 10);
  for (uint64_t s = 1; s <= 4; ++s) q.Push(Ev(1, s));
  q.StartSend(1);  // seq 1
  q.StartSend(2);  // seq 2
  CHECK(q.Fail(2, 1));
  CHECK(q.Fail(1, 1));
  CHECK_FALSE(q.Fail(1, 1));
  CHECK(q.waiting() == 4);
  CHECK(q.StartSend(3).seq == 1);
  CHECK(q.StartSend(4).seq == 2);
  CHECK(q.StartSend(5).seq == 3);
  CHECK(q.dropped_total() == 0);
}

TEST_CASE("DeviceQueue drops a requeued event that no longer fits, oldest first") {
  DeviceQueue q(2, 10);
  q.Push(Ev(1, 1));
  q.StartSend(1);
  q.Push(Ev(1, 2));
  q.Push(Ev(1, 3));
  // Full again; seq 1 comes back and is itself the oldest.
  q.Fail(1, 1);
  CHECK(q.waiting() == 2);
  CHECK(DroppedIn(q, 1) == Ranges{{1, 1}});
  CHECK(q.dropped_overflow() == 1);
}

TEST_CASE("DeviceQueue: after a reboot, waiting and failed events of the old boot are dropped") {
  DeviceQueue q(10, 10);
  for (uint64_t s = 1; s <= 6; ++s) q.Push(Ev(1, s));
  q.StartSend(1);   // seq 1
  q.StartSend(2);   // seq 2
  q.DropWaiting();  // the reboot: seqs 3..6 die with the RAM
  q.Push(Ev(2, 1));
  q.Confirm(1);  // seq 1 of boot 1 made it
  q.Fail(2, 2);  // seq 2 of boot 1 did not, and cannot be resent by boot 2
  CHECK(q.sent() == 1);
  CHECK(DroppedIn(q, 1) == Ranges{{2, 6}});
  CHECK(DroppedIn(q, 2).empty());
  CHECK(q.dropped_overflow() == 0);
  CHECK(q.dropped_total() == 5);
  CHECK(q.StartSend(3).boot == 2);
}

TEST_CASE("DeviceQueue: FailAllInFlight resends, DropAll accounts for everything left") {
  DeviceQueue q(10, 3);
  for (uint64_t s = 1; s <= 5; ++s) q.Push(Ev(1, s));
  for (uint64_t tag = 1; tag <= 3; ++tag) q.StartSend(tag);
  q.FailAllInFlight(1);
  CHECK(q.in_flight() == 0);
  CHECK(q.waiting() == 5);
  q.StartSend(10);
  q.Confirm(10);
  q.StartSend(11);
  q.DropAll();
  CHECK(q.waiting() == 0);
  CHECK(q.in_flight() == 0);
  CHECK(q.sent() == 1);
  CHECK(DroppedIn(q, 1) == Ranges{{2, 5}});
  // Every seq pushed is either sent or dropped.
  CHECK(q.sent() + q.dropped_total() == 5);
}

}  // namespace
}  // namespace sluice::sim
