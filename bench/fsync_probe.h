// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "common/clock.h"
#include "common/status.h"

namespace sluice::bench {

struct FsyncProbeOptions {
  std::string dir;  // the file system measured; the probe's file lives here while it runs
  uint64_t record_bytes = 150;
  std::chrono::milliseconds duration{10000};
  // Preallocated size, as the ingress journal's default storage.journal_bytes; appends wrap to
  // offset 0 at the end, so no append ever changes the file's size or block map.
  uint64_t file_bytes = 4 << 20;
};

// The machine's own limit for durable appends: what sluice's QoS 1 `sync = "full"` ingest is
// compared with. Preallocates a file in `dir` (zeros written, then fdatasync of the file and fsync
// of the directory), then appends fixed-size records one after another, each one pwrite plus one
// fdatasync, for the duration; the file is removed afterwards, whatever happened.
//
// The figures, besides the rate: the write volume the probe caused per record as the kernel
// accounts it to the process (/proc/self/io write_bytes: whole pages dirtied, without the file
// system's journal) and, when the file system sits on a block device with statistics, as the
// device saw it (sectors written, journal included: what wears a flash card). The device's count
// includes any other writer's, so it is exact only on a device of its own.
//
// Single-threaded; `clock` is borrowed and must outlive Run.
class FsyncProbe {
 public:
  FsyncProbe(FsyncProbeOptions options, const Clock* clock)
      : options_(std::move(options)), clock_(clock) {}

  // REQUIRES: record_bytes in 1..file_bytes, duration > 0.
  // result: records_per_s, records, seconds, record_bytes, bytes_written_per_record,
  // device_bytes_written_per_record (null without device statistics), latency_us {p50, p99, max}
  // (upper bounds of 5 % wide buckets), fs_type, device, file_bytes.
  Status Run(nlohmann::ordered_json* result);

 private:
  const FsyncProbeOptions options_;
  const Clock* const clock_;
};

}  // namespace sluice::bench
