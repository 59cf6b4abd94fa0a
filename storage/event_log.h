#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "storage/event.h"

namespace sluice::storage {

// Figures about the log, for status output, metrics and tests.
struct LogStats {
  uint64_t events = 0;  // events waiting for the upstream (not yet acknowledged)
  uint64_t bytes = 0;   // their accounted bytes (Event::AccountedBytes)
  uint64_t max_bytes = 0;
  uint64_t first_seq = 0;          // oldest waiting event, 0 when empty
  uint64_t last_seq = 0;           // highest sequence number ever assigned
  uint64_t cursor = 0;             // every event with seq <= cursor was confirmed upstream
  int64_t oldest_received_ms = 0;  // receive time of the oldest waiting event, 0 when empty
  uint64_t dropped_events = 0;     // dropped by the drop-oldest policy, since the log was created
  uint64_t dead_letters = 0;       // events the upstream refused for good, kept in the log
  // Their accounted bytes: Event::AccountedBytes plus the error text, counted against max_bytes
  // together with `bytes` (docs/log-format.md, "Accounting").
  uint64_t dead_letter_bytes = 0;
  uint64_t dropped_dead_letters =
      0;                          // dropped by the drop-oldest policy, since the log was created
  uint64_t commits = 0;           // transactions that appended events, since open
  uint64_t disk_full_errors = 0;  // appends refused because the disk was full, since open
};

// The durable, ordered event log between the MQTT source and the upstream sink.
//
// Contract: Append assigns each event the next sequence number and makes the events durable (to
// the degree of the configured sync mode) before it returns OK. Read returns events in sequence
// order. Acknowledge(n) records that the upstream confirmed every event up to n; those events leave
// the log and the cursor survives restarts. Once an operation fails with an I/O error or
// corruption, the log is failed for good and every later call returns that error (fail-stop).
//
// Thread-safety: Append/Acknowledge/DeadLetter may be called from any thread; Read from one
// reader thread at a time.
class EventLog {
 public:
  virtual ~EventLog() = default;

  // Appends events in the given order, in one transaction, and sets their `seq`.
  // When the log is full under the reject-new policy, appends the longest prefix that fits, sets
  // *appended to its length and returns Full. Under drop-oldest it drops the oldest waiting events
  // to make room.
  virtual Status Append(std::span<Event> events, size_t* appended) = 0;

  // Reads up to max_events waiting events with seq > after_seq, stopping early once max_bytes of
  // payload have been read (at least one event is returned if any is waiting).
  virtual Status Read(uint64_t after_seq, size_t max_events, size_t max_bytes,
                      std::vector<Event>* out) = 0;

  // The upstream confirmed every event with seq <= through_seq. REQUIRES: through_seq does not
  // decrease between calls and is <= the last assigned seq.
  virtual Status Acknowledge(uint64_t through_seq) = 0;

  // Records an event the upstream refused for good, with the reason; the caller still
  // acknowledges it so that forwarding goes on. The dead letter counts against max_bytes; recording
  // it never needs more room than the event already holds (the reason is shortened if the log is
  // full). Full only when the event is no longer in the log and does not fit.
  virtual Status DeadLetter(const Event& event, std::string_view error) = 0;

  // Blocks until an event with seq > after_seq exists or the timeout passes; true if one exists.
  virtual bool WaitForEventsAfter(uint64_t after_seq, std::chrono::milliseconds timeout) = 0;

  virtual LogStats Stats() const = 0;
};

}  // namespace sluice::storage
