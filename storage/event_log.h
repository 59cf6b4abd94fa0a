// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "storage/event.h"

namespace sluice::storage {

// How many of the newest events with an MQTT packet id the log keeps, also once every upstream
// confirmed them, and returns from RecentIngress: what the MQTT source compares a redelivered
// message with after a restart (docs/ARCHITECTURE.md, "Redeliveries from the broker"). What the
// broker can redeliver is bounded by its in-flight window for sluice: Mosquitto's
// max_inflight_messages (20 by default; sluice advertises no MQTT 5 Receive Maximum, so the same
// bound holds for MQTT 5), EMQX's max_inflight (32). Committed events whose PUBACK was lost are
// among the newest of that window, since sluice commits in delivery order. 256 covers every such
// default with room to spare and costs at most 256 rows in the log.
inline constexpr size_t kRecentIngressRows = 256;

// One upstream's view of the log: its cursor and what still waits for it.
struct CursorStats {
  std::string name;                // the upstream's name ([upstream.NAME])
  uint64_t cursor = 0;             // every event with seq <= cursor was confirmed by this upstream
  uint64_t events = 0;             // rows after the cursor (events and gap markers)
  uint64_t bytes = 0;              // their accounted bytes
  int64_t oldest_received_ms = 0;  // receive time of the first event after the cursor; 0 if none
  uint64_t dropped_events = 0;     // dropped by drop-oldest before this upstream confirmed them,
                                   // since the log was created (each named by a gap marker)
  uint64_t gap_markers = 0;        // gap markers with a part for this upstream, since creation
                                   // (a part merged into a later marker counts once)
};

// Figures about the log, for status output, metrics and tests.
struct LogStats {
  uint64_t events = 0;  // events some upstream has not yet confirmed (after the lowest cursor)
  uint64_t bytes = 0;   // their accounted bytes (Event::AccountedBytes)
  uint64_t max_bytes = 0;
  uint64_t first_seq = 0;          // oldest waiting event, 0 when empty
  uint64_t last_seq = 0;           // highest sequence number ever assigned
  uint64_t cursor = 0;             // the lowest cursor: every upstream confirmed up to here
  int64_t oldest_received_ms = 0;  // receive time of the oldest waiting event, 0 when empty
  uint64_t dropped_events = 0;     // dropped by the drop-oldest policy, since the log was created
  uint64_t dead_letters = 0;       // events an upstream refused for good, kept in the log
  // Their accounted bytes: Event::AccountedBytes plus the error text, counted against max_bytes
  // together with `bytes` (docs/log-format.md, "Accounting").
  uint64_t dead_letter_bytes = 0;
  uint64_t dropped_dead_letters =
      0;  // dropped by the drop-oldest policy, since the log was created
  // Events every upstream confirmed, kept for `sluice replay` within storage.retain; counted
  // against max_bytes, and the first to go when room is needed.
  uint64_t retained_events = 0;
  uint64_t retained_bytes = 0;
  uint64_t first_retained_seq = 0;  // 0 when none is retained
  uint64_t commits = 0;             // transactions that appended events, since open
  // The highest ingress journal record number (Event::ingress) the log holds, stored in the
  // same transaction as the events: every journal record up to it is in the log.
  uint64_t ingress_applied = 0;
  // Under sync = "full": appends committed without an fsync of their own because the ingress
  // journal had synced their events (EventLog::Sync), and the fsyncs that made them durable, since
  // open.
  uint64_t deferred_commits = 0;
  uint64_t deferred_syncs = 0;
  uint64_t disk_full_errors = 0;     // appends refused because the disk was full, since open
  std::vector<CursorStats> cursors;  // one per upstream, in configuration order
};

// A request to send a range of the log to one upstream again (`sluice replay`). It is stored in
// the log, so that it survives restarts and can be made beside a running daemon, and it keeps a
// position of its own: live forwarding and its cursor are not touched.
struct ReplayRequest {
  int64_t id = 0;            // assigned by the log, increasing
  std::string upstream;      // the upstream's name
  uint64_t from_seq = 0;     // first seq to send again
  uint64_t through_seq = 0;  // last seq to send again (the upstream's cursor when requested)
  uint64_t position = 0;     // every event of the range with seq <= position was confirmed
  int64_t created_ms = 0;    // wall clock when requested
  bool done = false;         // the whole range was confirmed (or had left the log)
};

// The durable, ordered event log between the MQTT source and the upstreams.
//
// Contract: Append assigns each event the next sequence number and makes the events durable (to
// the degree of the configured sync mode) before it returns OK, with one exception: events the
// ingress journal has made durable already (Event::ingress set) may be committed without a sync
// of their own (see Sync). Read returns rows in sequence order, and only rows that are durable.
// Each upstream has a cursor of its own: Acknowledge(cursor, n) records that the upstream confirmed
// every event up to n, and survives restarts. An event leaves the log once every cursor passed it
// (and storage.retain no longer keeps it). Once an operation fails with an I/O error or corruption,
// the log is failed for good and every later call returns that error (fail-stop).
//
// Thread-safety: Append/Acknowledge/DeadLetter/replay calls may be made from any thread; Read
// from one thread per cursor at a time.
class EventLog {
 public:
  virtual ~EventLog() = default;

  // Appends events in the given order, in one transaction, and sets their `seq`.
  // When the log is full under the reject-new policy, appends the longest prefix that fits, sets
  // *appended to its length and returns Full. Under drop-oldest it drops the oldest rows to make
  // room (retained events first, then dead letters, then waiting events) and leaves a gap marker
  // for every upstream that had not yet confirmed a dropped event.
  virtual Status Append(std::span<Event> events, size_t* appended) = 0;

  // Reads up to max_events rows (events and gap markers) with seq > after_seq, stopping early once
  // max_bytes of payload have been read (at least one row is returned if any exists). Retained
  // events are returned too: a replay reads them. *out is replaced by the rows read; the Events it
  // already holds are reused, buffers and all, so that a caller reading into the same vector again
  // and again does not allocate per row (the forwarder does, for every batch of a drain).
  virtual Status Read(uint64_t after_seq, size_t max_events, size_t max_bytes,
                      std::vector<Event>* out) = 0;

  // The upstream `cursor` confirmed every event with seq <= through_seq. NotFound for a cursor
  // the log was not opened with. REQUIRES: through_seq does not decrease between calls for one
  // cursor and is <= the last assigned seq.
  virtual Status Acknowledge(std::string_view cursor, uint64_t through_seq) = 0;

  // The cursor's position as last stored; NotFound for an unknown cursor.
  virtual Status CursorPosition(std::string_view cursor, uint64_t* seq) const = 0;

  // Records an event the upstream `cursor` refused for good, with the reason; the caller still
  // acknowledges it so that forwarding goes on. The dead letter counts against max_bytes; recording
  // it never needs more room than the event already holds (the reason is shortened if the log is
  // full). Full only when the event is no longer in the log and does not fit.
  virtual Status DeadLetter(std::string_view cursor, const Event& event,
                            std::string_view error) = 0;

  // Blocks until an event with seq > after_seq exists or the timeout passes; true if one exists.
  virtual bool WaitForEventsAfter(uint64_t after_seq, std::chrono::milliseconds timeout) = 0;

  // Replay requests not yet done, oldest first (for every upstream).
  virtual Status PendingReplays(std::vector<ReplayRequest>* out) = 0;
  // A replay's progress: every event of its range up to `position` was confirmed; `done` once
  // the range is complete.
  virtual Status AdvanceReplay(int64_t id, uint64_t position, bool done) = 0;

  // The newest `max_rows` events with an MQTT packet id (Event::packet_id != 0), oldest first,
  // whether some upstream still waits for them or every one confirmed them. A log that keeps no
  // packet ids has none.
  virtual Status RecentIngress(size_t max_rows, std::vector<Event>* out) {
    (void)max_rows;
    out->clear();
    return Status::Ok();
  }

  // Makes every committed change durable to the sync mode. Under sync = "full" an append that
  // holds only events the ingress journal has synced (and QoS 0 events, which were never
  // promised to survive a power cut) is committed without an fsync: the journal keeps those
  // events until this has run, so a power cut that takes the commit leaves them to recovery.
  // Read calls it before it returns rows, so that no upstream gets an event whose seq a power cut
  // could hand out again; the LogWriter calls it before the journal starts over at its front and
  // at a clean stop.
  virtual Status Sync() = 0;

  // The highest ingress journal record number (Event::ingress) the log holds durably to its sync
  // mode: LogStats::ingress_applied once Sync has run. The journal may forget records up to it.
  virtual uint64_t SyncedIngress() const = 0;

  virtual LogStats Stats() const = 0;
};

}  // namespace sluice::storage
