// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "firmware-sim/seq_ranges.h"

namespace sluice::sim {

// Counts the records of aborted Kafka transactions, exactly, from two reads of the same
// partitions from their beginning:
//  1. a read with isolation.level=read_committed, each of whose records is committed
//     (AddCommitted), and which ends in each partition at or below the partition's last stable
//     offset at the time;
//  2. then a read with isolation.level=read_uncommitted that stops in each partition where the
//     first read stopped (AddUncommitted).
// Below the last stable offset every transaction is decided, so each record of the second read is
// either one the first read returned or a record of an aborted transaction. The commit and abort
// markers take offsets too, but neither read returns them. A record is identified by topic,
// partition and offset, so one read twice counts once.
//
// Thread-compatible.
class AbortedRecords {
 public:
  void AddCommitted(std::string_view topic, int32_t partition, int64_t offset);
  // Returns true when the record is one the committed read did not return: aborted.
  bool AddUncommitted(std::string_view topic, int32_t partition, int64_t offset);

  // Distinct records of aborted transactions seen by the uncommitted read.
  uint64_t aborted() const { return aborted_; }
  // Distinct records of the uncommitted read that the committed read returned too.
  uint64_t confirmed() const { return confirmed_; }

 private:
  using Key = std::pair<std::string, int32_t>;
  // Offsets as ranges: a partition's committed records are runs between the markers and the
  // aborted records, so this costs a few bytes per transaction, not per record.
  std::map<Key, SeqRanges, std::less<>> committed_;
  std::map<Key, SeqRanges, std::less<>> seen_uncommitted_;
  uint64_t aborted_ = 0;
  uint64_t confirmed_ = 0;
};

}  // namespace sluice::sim
