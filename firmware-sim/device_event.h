// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sluice::sim {

// The payload every simulated device publishes: one JSON object. The verifier needs only the
// identity fields (device, boot, seq) and the send time; the rest makes the traffic look like a
// real fleet's. The format is described in docs/firmware-sim.md; kFormatVersion is its version.
//
//   {"v":1,"device":"dev-007","boot":3,"seq":42,"ts":1764000000123,"profile":"telemetry",
//    "data":{...profile fields...},"pad":"xxxx"}
//
// "seq" starts at 1 for each boot and increases by one per event; "boot" starts at 1 and
// increases by one per reboot; "ts" is the device's send time in Unix milliseconds; "pad" fills
// the payload up to the requested size.
struct DeviceEvent {
  static constexpr int kFormatVersion = 1;

  std::string device;
  uint32_t boot = 1;
  uint64_t seq = 1;
  int64_t ts_ms = 0;
  std::string profile;
  std::string data_json = "{}";  // a JSON object, the profile's fields

  // Encodes to JSON, padded with "pad" so that the result is at least `min_bytes` long.
  std::string Encode(size_t min_bytes = 0) const;
  // Parses a payload; InvalidArgument (with the reason) when it is not a device event.
  static Status Decode(std::string_view payload, DeviceEvent* out);
};

}  // namespace sluice::sim
