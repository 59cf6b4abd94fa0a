#pragma once

#include <cstdint>
#include <string>

namespace sluice::storage {

// One event as the log keeps it. The payload is opaque bytes and passes through unchanged.
struct Event {
  uint64_t seq = 0;         // gateway-wide, strictly increasing; assigned by the log on append
  int64_t received_ms = 0;  // wall clock (Unix ms) when sluice received the event
  int qos = 0;              // the MQTT QoS the event was delivered to sluice with
  bool retained = false;    // the broker delivered it as a retained message (MQTT RETAIN flag)
  std::string topic;        // the MQTT topic it was published on
  std::string payload;

  // What the event counts for against storage.max_bytes: its bytes plus a fixed per-row overhead
  // that approximates SQLite's record and index cost, so that many tiny events cannot exceed the
  // bound by far.
  uint64_t AccountedBytes() const { return topic.size() + payload.size() + kRowOverheadBytes; }

  static constexpr uint64_t kRowOverheadBytes = 32;
};

}  // namespace sluice::storage
