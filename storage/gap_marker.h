// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <map>
#include <string>
#include <string_view>

#include "common/status.h"
#include "storage/event.h"

namespace sluice::storage {

// The payload of a gap marker row (EventKind::kGap): for each upstream that had not confirmed
// some of the events a drop-oldest deleted, the part it lost, keyed by the upstream's (cursor's)
// name. Encoded as compact JSON with a version (docs/log-format.md, "Gap markers"):
//   {"v":1,"gaps":{"central":[first_seq,last_seq,count,first_received_ms,last_received_ms]}}
using GapParts = std::map<std::string, GapRange>;

inline constexpr int kGapMarkerVersion = 1;

std::string EncodeGapMarker(const GapParts& parts);

// Corruption (naming what is wrong) for a payload that is not a marker of a version this sluice
// understands; *out is left empty then.
Status DecodeGapMarker(std::string_view payload, GapParts* out);

// Unites `add` into `into` (an empty `into`, count 0, takes `add` as it is): the bounds widen to
// cover both, the counts add up. Used when a drop deletes an older marker: its parts go into the
// new one, so that no loss is reported twice or not at all.
void MergeGapRange(const GapRange& add, GapRange* into);

}  // namespace sluice::storage
