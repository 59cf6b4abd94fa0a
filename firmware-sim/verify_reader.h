// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "firmware-sim/consumed_record.h"

namespace sluice::sim {

// Per partition of a topic, an offset: how far a read got, or how far to read.
using PartitionOffsets = std::map<std::pair<std::string, int32_t>, int64_t>;

struct VerifyReaderOptions {
  std::string brokers = "127.0.0.1:9092";
  std::string topic;
  // Gap records (docs/kafka-records.md) are read from here too, when the topic exists: sluice
  // creates it with its first gap record, so it may appear while reading. Empty: none.
  std::string gap_topic;
  uint64_t max_records = 0;  // stop once this many (gap records apart) were read; 0: no limit
  // Stop when no record arrived for this long (counted from the start of reading) and every
  // partition has been read to its end.
  std::chrono::milliseconds idle_timeout{10000};
  std::chrono::milliseconds timeout{300000};  // stop reading after this long in any case
  // How long Open may take to reach the cluster and find the topic with its partitions.
  std::chrono::milliseconds connect_timeout{10000};
  std::map<std::string, std::string> properties;  // extra librdkafka settings, applied first
  // true: isolation.level=read_committed, as sluice's exactly-once consumers read: records of
  // aborted transactions are never returned, and a partition ends at its last stable offset (an
  // open transaction holds back what follows it). false: every record, read_uncommitted.
  bool read_committed = true;
  // Set: read exactly these partitions, each from its beginning up to (not including) the offset
  // given, and stop once every one is read that far (ReadStop::kBounds), instead of on idle. The
  // gap topic is not looked for. For a second read of what an earlier read covered
  // (Stats::positions; AbortedRecords).
  std::optional<PartitionOffsets> read_until;
};

// Reads one Kafka topic from its beginning, all partitions, without joining a consumer group:
// partitions are taken from the cluster's metadata and assigned at OFFSET_BEGINNING, and nothing is
// committed, so a run neither disturbs nor depends on any group. By default it reads as a
// read_committed consumer (VerifyReaderOptions::read_committed). Records come in offset order
// within each partition; partitions interleave as the broker serves them. Partitions added to the
// topic after Open are not read. The gap topic, if given, is read the same way, from when it
// exists; its records, and records of `topic` with the sluice.gap header, come with `gap` set.
// sluice.seq and sluice.log headers are passed on.
//
// Thread-compatible: one thread calls Open, Read and the destructor. `clock` must outlive the
// reader. librdkafka's own threads call only into the private event callback, which locks.
class VerifyReader {
 public:
  using StopReason = ReadStop;
  struct Stats {
    uint64_t records = 0;      // from `topic`, gap records not included
    uint64_t gap_records = 0;  // from either topic
    StopReason stop = StopReason::kIdle;
    std::chrono::milliseconds elapsed{0};
    uint64_t transient_errors = 0;  // errors librdkafka recovers from itself (broker went away)
    int partitions_at_end = 0;      // partitions read to their end when reading stopped
    // Per partition read, the offset reading got to: past the last record returned, or where the
    // broker reported the partition's end, whichever is higher. Read committed, that end is the
    // last stable offset, so every transaction below the position was decided when it was read.
    PartitionOffsets positions;
  };

  // Connects and assigns every partition of the topic (with read_until: the partitions it names,
  // without asking the cluster for metadata). Unavailable (naming the brokers and the
  // last broker error) when the cluster cannot be reached within connect_timeout; NotFound when
  // the topic does not appear within it; InvalidArgument for a bad setting.
  static Status Open(VerifyReaderOptions options, const Clock* clock,
                     std::unique_ptr<VerifyReader>* out);
  ~VerifyReader();
  VerifyReader(const VerifyReader&) = delete;
  VerifyReader& operator=(const VerifyReader&) = delete;

  int partitions() const { return static_cast<int>(partition_ids_.size()); }
  // Partitions of the gap topic being read; 0 while it does not exist.
  int gap_partitions() const { return static_cast<int>(gap_partition_ids_.size()); }

  // Calls `on_record` for each record until max_records, the idle timeout (with every partition
  // at its end), the bounds of read_until, or the overall timeout.
  // `on_warning` hears about transient errors, once per kind of error. An error that reading
  // cannot recover from (topic deleted, not authorised, fatal client error) ends it with a Status
  // naming the topic and brokers; `stats` is filled either way.
  Status Read(const std::function<void(const ConsumedRecord&)>& on_record,
              const std::function<void(const std::string&)>& on_warning, Stats* stats);

 private:
  class Events;

  VerifyReader(VerifyReaderOptions options, const Clock* clock);
  Status Connect();
  // Assigns the partitions of read_until that have anything to read.
  Status AssignBounds();
  // Assigns the gap topic's partitions once it exists; true when it is assigned.
  bool AssignGapTopic(std::chrono::milliseconds timeout);
  std::string Where() const;

  const VerifyReaderOptions options_;
  const Clock* const clock_;
  std::unique_ptr<Events> events_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::vector<int32_t> partition_ids_;
  std::vector<int32_t> gap_partition_ids_;
};

}  // namespace sluice::sim
