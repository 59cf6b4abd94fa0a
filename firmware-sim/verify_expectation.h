// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sluice::sim {

// What the simulator says it sent: the part of its summary JSON the verifier needs. With it, the
// verifier knows where each (device, boot) ends, so that a lost tail or a device that never
// arrived counts as lost, and which sequence numbers the device itself dropped (never published),
// so that those do not.
//
//   {"devices":[{"device":"dev-001",
//                "boots":[{"boot":1,"first_seq":1,"last_seq":500,"dropped_by_device":[[17,20]]}]}],
//    ...other fields, ignored...}
//
// Ranges are inclusive. A boot that published nothing has last_seq = first_seq - 1. Dropped ranges
// lie inside [first_seq, last_seq] and do not overlap.
//
// A plain value type; Parse checks everything the verifier relies on, so a parsed expectation is
// always consistent.
struct VerifyExpectation {
  struct Range {
    uint64_t first = 0;
    uint64_t last = 0;
    bool operator==(const Range&) const = default;
  };
  struct Boot {
    uint32_t boot = 1;
    uint64_t first_seq = 1;
    uint64_t last_seq = 0;
    std::vector<Range> dropped_by_device;  // sorted by first, disjoint
  };
  struct Device {
    std::string device;
    std::vector<Boot> boots;  // sorted by boot, each boot once
  };

  std::vector<Device> devices;  // sorted by device, each device once

  // Parses the summary text. InvalidArgument naming the device and boot at fault when a field is
  // missing, has the wrong type, or contradicts another (ranges out of order or outside the boot).
  static Status Parse(std::string_view json, VerifyExpectation* out);
  // Reads and parses a summary file; errors name the file.
  static Status LoadFile(const std::string& path, VerifyExpectation* out);
};

}  // namespace sluice::sim
