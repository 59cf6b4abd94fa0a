// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "firmware-sim/verify_expectation.h"

namespace sluice::sim {

using SeqRange = VerifyExpectation::Range;

// End-to-end latency of events, in milliseconds: the Kafka record's timestamp minus the device's
// send time ("ts"). Both clocks are wall clocks, so skew between the device and the gateway shows
// up here, and can make values negative.
struct LatencyStats {
  uint64_t samples = 0;
  int64_t min = 0;
  int64_t p50 = 0;
  int64_t p90 = 0;
  int64_t p99 = 0;
  int64_t p999 = 0;
  int64_t max = 0;

  // Nearest-rank percentiles: pN is the smallest sample that at least N% of the samples are <=,
  // so it is always one of the samples (for 1..1000: p50 = 500, p99.9 = 999). Sorts `values`.
  static LatencyStats Of(std::vector<int64_t>* values);
};

// The outcome for one boot of one device. Every record of the boot falls in exactly one of
// in order, duplicate or reordered (see Verifier for the definitions).
struct BootResult {
  uint32_t boot = 0;
  bool expected = false;  // listed in the expectation (always false without one)
  uint64_t records = 0;   // records read, duplicates included
  uint64_t unique = 0;    // distinct sequence numbers read
  uint64_t duplicates = 0;
  uint64_t reordered = 0;
  uint64_t lost = 0;
  uint64_t dropped_reported = 0;   // missing, but accounted for by sluice's gap records
  uint64_t dropped_by_device = 0;  // seqs the expectation says the device never published
  uint64_t unexpected = 0;         // records the expectation says cannot exist
  uint64_t highest_seq = 0;        // highest seq read; 0 when none
  // The range checked for loss: [first_seq, last_seq] of the expectation, or [1, highest_seq].
  uint64_t first_seq = 1;
  uint64_t last_seq = 0;
  std::vector<SeqRange> lost_ranges;      // sorted, disjoint, maximal
  std::vector<SeqRange> reported_ranges;  // dropped, reported: sorted, disjoint
};

struct DeviceResult {
  std::string device;
  bool expected = false;
  std::vector<BootResult> boots;  // sorted by boot
  uint64_t records = 0;
  uint64_t duplicates = 0;
  uint64_t reordered = 0;
  uint64_t stale_boot = 0;  // the part of `reordered` that came after a newer boot
  uint64_t lost = 0;
  uint64_t dropped_reported = 0;
  uint64_t dropped_by_device = 0;
  uint64_t unexpected = 0;
  // Kafka keeps order only within a partition: a device on more than one cannot be checked for
  // order reliably, and the report says so.
  std::vector<int32_t> partitions;
  LatencyStats latency;
};

// The gap records read (sluice's reports of events its log dropped) and what they accounted for.
struct GapSummary {
  uint64_t records = 0;    // distinct gap records
  uint64_t repeats = 0;    // gap records read again (at-least-once delivery)
  uint64_t events = 0;     // events they report dropped, summed over the distinct records
  uint64_t accounted = 0;  // missing device events they account for (totals.dropped_reported)
  // Some missing events were matched to gap records by count only, because the records next to
  // them carry no sluice.seq (MQTT 3.1.1 has no user properties).
  bool by_count = false;
};

struct ForeignRecord {
  int32_t partition = -1;
  int64_t offset = -1;
  std::string reason;
};

// What a Verifier found: per device, in total, and the verdict. A plain value; the verdict and the
// two renderings depend only on its contents and the policy passed in.
//
// JSON document (ToJson), version kFormatVersion:
//   {"format":3, "passed":bool, "failures":["lost 4 events", ...], "expectation":bool,
//    "totals":{"devices","boots","records","unique","lost","dropped_reported","duplicates",
//              "reordered","stale_boot","dropped_by_device","unexpected","foreign",
//              "aborted_records"},
//    "gaps":{"records","repeats","events","accounted","by_count"},
//    "latency_ms":{"samples","min","p50","p90","p99","p99_9","max"},
//    "devices":[{"device","expected","records","lost","dropped_reported","duplicates","reordered",
//                "stale_boot","dropped_by_device","unexpected","partitions":[0],"latency_ms":{...},
//                "boots":[{"boot","expected","records","unique","first_seq","last_seq",
//                          "highest_seq","lost","lost_ranges":[[17,20],[42,42]],
//                          "dropped_reported","reported_ranges":[[5,9]],"duplicates",
//                          "reordered","dropped_by_device","unexpected"}]}],
//    "foreign_examples":[{"partition","offset","reason"}]}
// Format 2 added dropped_reported, reported_ranges and gaps; "lost" no longer counts the events
// that gap records account for. Format 3 added totals.aborted_records (null when not counted).
// sluice-verify adds "source": Kafka {"kind":"kafka","brokers","topic","gap_topic","partitions",
// "records_read","gap_records_read","stopped_by","elapsed_ms","transient_errors"}; MQTT
// {"kind":"mqtt","url","topic","gap_topic","client_id","protocol","records_read",
// "gap_records_read","stopped_by","elapsed_ms","reconnects","session_lost"}.
struct VerifyReport {
  static constexpr int kFormatVersion = 3;

  struct Policy {
    bool fail_on_duplicates = false;
    bool strict = false;  // foreign and unexpected records fail the run too
    // Fewer records than this read (device events, duplicates and foreign ones included) fail
    // the run: the reader stopped before the stream it was told to expect was complete.
    uint64_t min_records = 0;
  };

  struct Totals {
    uint64_t devices = 0;
    uint64_t boots = 0;
    uint64_t records = 0;  // device events read, duplicates included; foreign ones not
    uint64_t unique = 0;
    uint64_t lost = 0;
    uint64_t dropped_reported = 0;
    uint64_t duplicates = 0;
    uint64_t reordered = 0;
    uint64_t stale_boot = 0;
    uint64_t dropped_by_device = 0;
    uint64_t unexpected = 0;
    uint64_t foreign = 0;
  };

  bool with_expectation = false;
  std::vector<DeviceResult> devices;  // sorted by device
  Totals totals;
  GapSummary gaps;
  LatencyStats latency;
  std::vector<ForeignRecord> foreign_examples;  // the first few, for the reader of the report
  // Records of aborted Kafka transactions (AbortedRecords): what a read_uncommitted consumer sees
  // beside the committed records checked above. They take no part in the checks, so they are
  // never duplicates, and fail nothing. Unset when not counted (a read_committed or MQTT read).
  std::optional<uint64_t> aborted_records;

  // Why the run fails under `policy`, one phrase per reason; empty when it passes. Loss,
  // reordering and a stream without a single device event always fail it; events that gap
  // records account for (dropped, reported) do not.
  std::vector<std::string> Failures(const Policy& policy) const;
  bool Passed(const Policy& policy) const { return Failures(policy).empty(); }

  nlohmann::ordered_json ToJson(const Policy& policy) const;
  // A table with one line per device and a total line, then latency, extras and the verdict.
  // At most `max_ranges` lost ranges are listed per device; the JSON has them all.
  std::string FormatTable(const Policy& policy, size_t max_ranges = 4) const;
};

}  // namespace sluice::sim
