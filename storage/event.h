// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstdint>
#include <string>

namespace sluice::storage {

// What a row of the log is. A gap marker stands in the log at the place of events that the
// drop-oldest policy deleted before some upstream confirmed them, so that each such upstream
// receives, in order, a record naming what it lost (docs/log-format.md, "Gap markers").
enum class EventKind : uint8_t { kEvent = 0, kGap = 1 };

// The events one upstream lost to one drop (or to several drops merged), as its gap record names
// them: the range of log sequence numbers, how many events of that range were routed to the
// upstream and dropped, and their receive times.
struct GapRange {
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  uint64_t count = 0;
  int64_t first_received_ms = 0;
  int64_t last_received_ms = 0;
};

// One event as the log keeps it. The payload is opaque bytes and passes through unchanged.
struct Event {
  uint64_t seq = 0;         // gateway-wide, strictly increasing; assigned by the log on append
  int64_t received_ms = 0;  // wall clock (Unix ms) when sluice received the event
  int qos = 0;              // the MQTT QoS the event was delivered to sluice with
  bool retained = false;    // the broker delivered it as a retained message (MQTT RETAIN flag)
  std::string topic;        // the MQTT topic it was published on
  std::string payload;
  EventKind kind = EventKind::kEvent;
  // The MQTT packet identifier the broker delivered the event with: 1..65535 for QoS 1/2, 0 for
  // QoS 0, for gap markers and for events that did not come straight from the broker (a replayed
  // dead letter). A redelivery of a stored event carries the same one (docs/ARCHITECTURE.md,
  // "Redeliveries from the broker").
  uint16_t packet_id = 0;
  // kGap only, as the forwarder hands it to one upstream's sink: that upstream's part of the
  // marker (the marker row's payload holds every upstream's part; storage/gap_marker.h).
  GapRange gap;
  // The number of the ingress journal record that made the event durable before it was in the
  // log (storage/ingress_journal.h); 0 for an event that never went through the journal. Not
  // stored in the log's rows: the log keeps only the highest number it holds.
  uint64_t ingress = 0;

  // What the event counts for against storage.max_bytes: its bytes plus a fixed per-row overhead
  // that approximates SQLite's record and index cost, so that many tiny events cannot exceed the
  // bound by far.
  uint64_t AccountedBytes() const { return topic.size() + payload.size() + kRowOverheadBytes; }

  static constexpr uint64_t kRowOverheadBytes = 32;
};

}  // namespace sluice::storage
