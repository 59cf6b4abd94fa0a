// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace sluice::sim {

// What one boot of one device produced. Every seq in [first_seq, last_seq] was either confirmed
// by the broker (QoS 1/2) or written to the socket (QoS 0), or is listed in `dropped`.
// last_seq is 0 (and first_seq 1) for a boot that produced no event.
struct BootSummary {
  uint32_t boot = 1;
  uint64_t first_seq = 1;
  uint64_t last_seq = 0;
  std::vector<std::pair<uint64_t, uint64_t>> dropped;  // inclusive seq ranges
};

struct DeviceSummary {
  std::string device;
  std::string profile;
  int qos = 1;
  std::vector<BootSummary> boots;
  uint64_t generated = 0;
  uint64_t sent = 0;
  uint64_t dropped_overflow = 0;  // the outbox was full: oldest waiting event dropped
  uint64_t dropped = 0;           // for any reason: overflow, reboot, unsent at exit
};

// The final report of a run: the per-device table printed at exit and the --summary-json file
// (schema in docs/firmware-sim.md). A value type.
struct FleetSummary {
  uint64_t seed = 0;
  std::vector<DeviceSummary> devices;
  uint64_t reboots = 0;
  uint64_t connection_losses = 0;
  double elapsed_s = 0;      // from the first scheduled event to the end of the flush
  double generating_s = 0;   // from the first scheduled event to the last one generated
  double target_rate = 0;    // fleet-wide events/s the schedule asked for
  bool interrupted = false;  // stopped by SIGINT/SIGTERM

  uint64_t generated() const;
  uint64_t sent() const;
  uint64_t dropped() const;
  uint64_t dropped_overflow() const;

  // {"devices":[{"device","profile","boots":[{"boot","first_seq","last_seq",
  // "dropped_by_device":[[a,b],...]}],"sent",...}],"totals":{...},"seed":S}
  std::string ToJson() const;
  // Writes ToJson() to `path` through a temporary file and a rename, so that a reader never sees
  // half a file. IoError naming the path on failure.
  Status WriteJsonFile(const std::string& path) const;
  // One line per device: id, profile, boots, sent, dropped (overflow/all), last seq per boot.
  std::string Table() const;
  // One line: totals and rates.
  std::string TotalsLine() const;
};

}  // namespace sluice::sim
