// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/aborted_records.h"

namespace sluice::sim {

void AbortedRecords::AddCommitted(std::string_view topic, int32_t partition, int64_t offset) {
  if (offset < 0) return;  // no offset: librdkafka always gives one for a record it returns
  committed_[Key(topic, partition)].Add(static_cast<uint64_t>(offset));
}

bool AbortedRecords::AddUncommitted(std::string_view topic, int32_t partition, int64_t offset) {
  if (offset < 0) return false;
  const Key key(topic, partition);
  SeqRanges& seen = seen_uncommitted_[key];
  const auto at = static_cast<uint64_t>(offset);
  auto committed = committed_.find(key);
  const bool is_committed = committed != committed_.end() && committed->second.Contains(at);
  if (seen.Contains(at)) return !is_committed;
  seen.Add(at);
  if (is_committed) {
    confirmed_++;
    return false;
  }
  aborted_++;
  return true;
}

}  // namespace sluice::sim
