// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "firmware-sim/verify_expectation.h"
#include "firmware-sim/verify_gap.h"
#include "firmware-sim/verify_report.h"

namespace sluice::sim {

// Where a record was read and what sluice said about it, whatever the source (Kafka, MQTT).
struct RecordOrigin {
  std::optional<int64_t> timestamp_ms;  // the upstream's timestamp (Kafka), for latency
  int32_t partition = 0;                // Kafka partition; 0 for MQTT
  int64_t offset = -1;                  // Kafka offset; MQTT: the message's arrival index
  std::optional<uint64_t> log_seq;      // sluice.seq (Kafka header, MQTT 5 user property)
  std::string log_id;                   // sluice.log; empty when the record has none
};

// One device event as read back.
struct VerifyRecord {
  std::string device;
  uint32_t boot = 1;
  uint64_t seq = 1;
  int64_t sent_ms = 0;                 // the device's "ts"
  std::optional<int64_t> kafka_ts_ms;  // the record's timestamp, when the upstream gave one
  int32_t partition = 0;
  int64_t offset = -1;
  std::optional<uint64_t> log_seq;  // sluice.seq, when the record carries it
  std::string log_id;               // sluice.log; empty when the record has none
};

// Checks that a stream of device events read back from Kafka or MQTT holds every event exactly once
// and in order, and measures end-to-end latency. Knows no source: the caller feeds records in the
// order it read them (VerifyReader gives each partition's records in offset order, VerifyMqttReader
// the order the broker delivered them), and the gap records it read.
//
// Definitions, per device and boot, in the order of the Add calls:
//  - The first appearance of a sequence number is "in order" when its seq is higher than every seq
//    of that (device, boot) seen before, and "reordered" when it is lower.
//  - A repeat of a (device, boot, seq) already seen is a "duplicate", and only that: sluice's
//    at-least-once resends look like 5 6 5 6, whose first appearances are in order.
//  - A first appearance of a boot lower than the highest boot of the same device seen so far is
//    "reordered" as well (one per event; counted also as "stale_boot"). A reboot itself, where
//    boot 2 starts again at seq 1, is neither loss nor reordering.
//  - Every record falls in exactly one of: in order, duplicate, reordered.
//  - "Lost" are the seqs of [1, highest seq seen] that never appeared. With an expectation the
//    range is the boot's [first_seq, last_seq] instead, so a missing tail is lost and a device or
//    boot with no record at all is lost entirely; seqs inside the boot's dropped_by_device ranges
//    are never lost (the device did not send them) and are counted as "dropped by device".
//  - "Unexpected" (only with an expectation): records of a device or boot the expectation does
//    not list, or whose seq lies outside [first_seq, last_seq] or inside a dropped range. They are
//    still checked for duplicates and order.
//  - "Dropped, reported": a seq that would be lost, but that a gap record of sluice accounts for.
//    The device's previous and next arrived events (by boot, then seq; the first appearance of
//    each) bound the log seqs (sluice.seq) the missing event could have had: the open interval
//    between theirs, open at an end where the device has no such event. When that interval meets
//    the [first_seq, last_seq] of a gap record of the same log (sluice.log; a record without it
//    matches any log), the missing events count as dropped-reported, at most as many in all as
//    the gap records that the interval meets counted (each gap record's count is spent once,
//    devices in name order, the oldest seqs of a missing run first; the rest stay lost). A record
//    without sluice.seq (an MQTT 3.1.1 reader) leaves its end of the interval open, so missing
//    events next to it are matched by count only; the report says so (gaps.by_count). A gap
//    record read twice (at-least-once) counts once.
//  - "Foreign": records whose payload is not a device event; counted and set aside.
//  - Latency: the Kafka timestamp minus "ts", for the first appearance of each event that has a
//    Kafka timestamp (a resend carries the time it was resent, not when the event first arrived).
//
// Memory: the seqs seen are kept as ranges, so an in-order stream costs a few bytes per boot, plus
// 8 bytes per event for the latency samples.
//
// Thread-compatible: one thread at a time. Not copyable (state points into the expectation).
class Verifier {
 public:
  // At most this many foreign records are kept as examples in the report.
  static constexpr size_t kMaxForeignExamples = 10;

  Verifier() = default;
  explicit Verifier(VerifyExpectation expectation);
  Verifier(const Verifier&) = delete;
  Verifier& operator=(const Verifier&) = delete;

  void Add(const VerifyRecord& record);
  // Decodes a record value as a DeviceEvent and adds it; anything else is counted as foreign.
  void AddPayload(std::string_view payload, const RecordOrigin& origin);
  void AddForeign(int32_t partition, int64_t offset, std::string reason);

  void AddGap(const VerifyGap& gap);
  // Decodes a gap record's value and adds it; anything else is counted as foreign.
  void AddGapPayload(std::string_view payload, const RecordOrigin& origin);

  // Records added so far, foreign ones included, gap records not.
  uint64_t records() const { return records_; }
  // Gap records added so far, repeats included.
  uint64_t gap_records() const { return gap_records_; }

  // The report on everything added so far; Add may go on afterwards.
  VerifyReport Finish() const;

 private:
  // The log position of an arrived event: enough to bound where a missing neighbour was logged.
  struct LogRef {
    bool known = false;  // the record carried sluice.seq
    uint32_t log = 0;    // index into log_ids_; 0: the record named no log
    uint64_t seq = 0;
  };
  // A run of seqs seen, with the log positions of its two ends (the neighbours of missing seqs).
  struct SeenRange {
    uint64_t last = 0;
    LogRef first_ref;
    LogRef last_ref;
  };
  using SeqSet = std::map<uint64_t, SeenRange>;  // keyed by the first seq of the run
  struct GapKey {
    std::string log;
    uint64_t first_seq = 0;
    uint64_t last_seq = 0;
    uint64_t count = 0;
    auto operator<=>(const GapKey&) const = default;
  };

  struct BootState {
    const VerifyExpectation::Boot* expected = nullptr;  // points into expectation_
    // Seqs seen, as disjoint inclusive ranges, merged when adjacent.
    SeqSet seen;
    uint64_t highest = 0;
    uint64_t records = 0;
    uint64_t duplicates = 0;
    uint64_t reordered = 0;
    uint64_t unexpected = 0;
  };
  struct DeviceState {
    const VerifyExpectation::Device* expected = nullptr;  // points into expectation_
    std::map<uint32_t, BootState> boots;
    uint32_t highest_boot = 0;
    uint64_t records = 0;
    uint64_t stale_boot = 0;
    std::set<int32_t> partitions;
    std::vector<int64_t> latencies_ms;
  };

  BootState& BootFor(DeviceState& device, uint32_t boot);
  static bool IsUnexpected(const BootState& boot, uint64_t seq);
  static bool InsertSeq(SeqSet* set, uint64_t seq, const LogRef& ref);
  uint32_t InternLog(const std::string& log_id);

  const bool with_expectation_ = false;
  const VerifyExpectation expectation_{};
  std::map<std::string, DeviceState, std::less<>> devices_;
  uint64_t records_ = 0;
  uint64_t foreign_ = 0;
  std::vector<ForeignRecord> foreign_examples_;
  // log ids named by records; [0] is "" (none named), so a LogRef's log is an index here.
  std::vector<std::string> log_ids_{std::string()};
  std::map<std::string, uint32_t, std::less<>> log_index_;
  std::set<GapKey> gaps_;  // distinct gap records
  uint64_t gap_records_ = 0;
};

}  // namespace sluice::sim
