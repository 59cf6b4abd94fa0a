// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::bench {

// What a benchmark event carries so that any probe downstream (MQTT subscriber, Kafka reader) can
// tell which run it belongs to, which one it is, and when it was published:
//   "sb1 <tag> <seq> <send_us> " followed by 'x' up to the payload size.
// send_us is Unix microseconds (wall clock), comparable with Kafka's LogAppendTime on one machine.
struct BenchStamp {
  std::string tag;   // the run, e.g. "lat1000"; no spaces
  uint64_t seq = 0;  // 0-based within the run
  int64_t send_us = 0;
};

// At least `bytes` long: the stamp is never cut, so very small sizes give slightly longer payloads.
std::string EncodeStamp(const BenchStamp& stamp, size_t bytes);
std::optional<BenchStamp> DecodeStamp(std::string_view payload);

int64_t NowUnixMicros();

}  // namespace sluice::bench
