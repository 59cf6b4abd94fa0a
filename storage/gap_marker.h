#pragma once

#include <map>
#include <string>
#include <string_view>

#include "common/status.h"
#include "storage/event.h"

namespace sluice::storage {

// The payload of a gap marker row: each affected upstream's part. Placeholder until the storage
// change lands.
std::string EncodeGapMarker(const std::map<std::string, GapRange>& parts);
Status DecodeGapMarker(std::string_view payload, std::map<std::string, GapRange>* parts);

}  // namespace sluice::storage
