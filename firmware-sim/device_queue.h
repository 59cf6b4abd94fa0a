// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>

#include "firmware-sim/seq_ranges.h"

namespace sluice::sim {

// One event on its way out of a device.
struct OutgoingEvent {
  uint32_t boot = 1;
  uint64_t seq = 0;
  std::string payload;
};

// A device's outbox, as small firmware keeps one in RAM: events wait here while the device is
// offline, and stay (in flight) until the broker has confirmed them. Bounded twice: at most
// `capacity` events wait, and at most `window` are in flight (Paho refuses a client more than 100
// unsent publishes).
//
// Overflow policy: drop the oldest waiting event. Every event that leaves the outbox other than
// by Confirm is recorded in dropped(), per boot, as seq ranges, so that a verifier knows which
// seqs it may never see. Every seq pushed ends up in exactly one place: waiting, in flight, sent
// or dropped.
//
// Not thread-safe: owned by the fleet's scheduler thread.
class DeviceQueue {
 public:
  // REQUIRES: capacity >= 1, window >= 1.
  DeviceQueue(size_t capacity, size_t window);

  DeviceQueue(const DeviceQueue&) = delete;
  DeviceQueue& operator=(const DeviceQueue&) = delete;

  // Appends an event newer than every event pushed before. When `capacity` events already wait,
  // the oldest waiting one is dropped (counted in dropped_overflow()).
  void Push(OutgoingEvent e);

  // True when an event waits and fewer than `window` are in flight.
  bool CanSend() const { return !waiting_.empty() && in_flight_.size() < window_; }
  // Moves the oldest waiting event in flight under `tag` and returns it; the reference stays
  // valid until the tag is resolved. REQUIRES: CanSend(), `tag` not in flight.
  const OutgoingEvent& StartSend(uint64_t tag);

  // The broker acknowledged the event (QoS 1/2), or it was written to the socket (QoS 0).
  // False, and nothing changes, if `tag` is not in flight (resolved before, or dropped).
  bool Confirm(uint64_t tag);
  // The send did not complete. An event of `current_boot` waits again, in seq order, to be
  // resent (dropping the oldest waiting event if that overflows); one of an earlier boot died with
  // the RAM of the rebooted device and is dropped. False if `tag` is not in flight.
  bool Fail(uint64_t tag, uint32_t current_boot);
  // Fail() for every event in flight: the connection is gone and Paho may never report them.
  void FailAllInFlight(uint32_t current_boot);
  // Drops every waiting event: a reboot lost them.
  void DropWaiting();
  // Drops every event, waiting and in flight: the simulator exits without having sent them.
  void DropAll();

  size_t waiting() const { return waiting_.size(); }
  size_t in_flight() const { return in_flight_.size(); }
  uint64_t sent() const { return sent_; }
  uint64_t dropped_overflow() const { return dropped_overflow_; }
  // Dropped for any reason (overflow, reboot, exit).
  uint64_t dropped_total() const { return dropped_total_; }
  // boot -> dropped seqs of that boot.
  const std::map<uint32_t, SeqRanges>& dropped() const { return dropped_; }

 private:
  void Drop(const OutgoingEvent& e);
  // Inserts in (boot, seq) order, then enforces the capacity.
  void Requeue(OutgoingEvent e);

  const size_t capacity_;
  const size_t window_;
  std::deque<OutgoingEvent> waiting_;            // oldest first
  std::map<uint64_t, OutgoingEvent> in_flight_;  // by tag
  uint64_t sent_ = 0;
  uint64_t dropped_overflow_ = 0;
  uint64_t dropped_total_ = 0;
  std::map<uint32_t, SeqRanges> dropped_;
};

}  // namespace sluice::sim
