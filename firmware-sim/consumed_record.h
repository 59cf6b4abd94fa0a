// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>
#include <system_error>

namespace sluice::sim {

// Why a reader stopped reading.
enum class ReadStop {
  kCount,    // it read the number of records it was told to
  kIdle,     // nothing new arrived for the idle timeout
  kTimeout,  // the overall timeout passed
  kBounds,   // every partition was read up to the offset it was given
};

// One record as a reader of sluice's output got it, from Kafka (VerifyReader) or MQTT
// (VerifyMqttReader); the views are valid only during the reader's callback.
struct ConsumedRecord {
  std::string_view topic;
  std::string_view key;  // Kafka's record key; empty for MQTT
  std::string_view value;
  int32_t partition = 0;                // Kafka partition; 0 for MQTT
  int64_t offset = 0;                   // Kafka offset; MQTT: the message's arrival index, from 0
  std::optional<int64_t> timestamp_ms;  // Kafka CreateTime or LogAppendTime; MQTT has none
  // A gap record (sluice reporting events its log dropped): on the gap topic, or flagged with the
  // sluice.gap header / user property.
  bool gap = false;
  // sluice.seq and sluice.log (Kafka headers, MQTT 5 user properties), when the record has them.
  std::optional<uint64_t> log_seq;
  std::string_view log_id;
  // sluice.received_ms (Kafka header): when sluice took the event from the MQTT broker. Read by
  // the benchmark's latency probe only, to tell the MQTT leg from sluice and Kafka.
  std::optional<uint64_t> received_ms;
};

// A sluice.seq or sluice.received_ms value (decimal ASCII, no sign or padding); nullopt for
// anything else.
inline std::optional<uint64_t> ParseHeaderNumber(std::string_view text) {
  uint64_t v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return v;
}

}  // namespace sluice::sim
