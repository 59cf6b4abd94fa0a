#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "firmware-sim/verify_expectation.h"
#include "firmware-sim/verify_report.h"

namespace sluice::sim {

// One device event as read back from Kafka.
struct VerifyRecord {
  std::string device;
  uint32_t boot = 1;
  uint64_t seq = 1;
  int64_t sent_ms = 0;                 // the device's "ts"
  std::optional<int64_t> kafka_ts_ms;  // the record's timestamp, when the broker gave one
  int32_t partition = 0;
  int64_t offset = -1;
};

// Checks that a stream of device events read back from Kafka holds every event exactly once and
// in order, and measures end-to-end latency. Knows nothing about Kafka: the caller feeds records
// in the order it read them (VerifyReader gives each partition's records in offset order).
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
  void AddPayload(std::string_view payload, std::optional<int64_t> kafka_ts_ms, int32_t partition,
                  int64_t offset);
  void AddForeign(int32_t partition, int64_t offset, std::string reason);

  // Records added so far, foreign ones included.
  uint64_t records() const { return records_; }

  // The report on everything added so far; Add may go on afterwards.
  VerifyReport Finish() const;

 private:
  struct BootState {
    const VerifyExpectation::Boot* expected = nullptr;  // points into expectation_
    // Seqs seen, as disjoint inclusive ranges keyed by their first seq, merged when adjacent.
    std::map<uint64_t, uint64_t> seen;
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

  const bool with_expectation_ = false;
  const VerifyExpectation expectation_{};
  std::map<std::string, DeviceState, std::less<>> devices_;
  uint64_t records_ = 0;
  uint64_t foreign_ = 0;
  std::vector<ForeignRecord> foreign_examples_;
};

}  // namespace sluice::sim
