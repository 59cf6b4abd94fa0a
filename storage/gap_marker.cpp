// SPDX-License-Identifier: Apache-2.0

#include "storage/gap_marker.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace sluice::storage {

std::string EncodeGapMarker(const GapParts& parts) {
  nlohmann::ordered_json gaps = nlohmann::ordered_json::object();
  for (const auto& [name, r] : parts) {
    gaps[name] = {r.first_seq, r.last_seq, r.count, r.first_received_ms, r.last_received_ms};
  }
  nlohmann::ordered_json j;
  j["v"] = kGapMarkerVersion;
  j["gaps"] = std::move(gaps);
  return j.dump();
}

namespace {

Status Bad(std::string_view why) {
  return Status::Corruption("gap marker payload is damaged: " + std::string(why));
}

}  // namespace

Status DecodeGapMarker(std::string_view payload, GapParts* out) {
  out->clear();
  const auto j = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Bad("not a JSON object");
  const auto v = j.find("v");
  if (v == j.end() || !v->is_number_unsigned()) return Bad("no version \"v\"");
  if (v->get<uint64_t>() != kGapMarkerVersion) {
    return Status::Corruption("gap marker of version " + std::to_string(v->get<uint64_t>()) +
                              ", which this sluice does not understand (it knows " +
                              std::to_string(kGapMarkerVersion) + ")");
  }
  const auto gaps = j.find("gaps");
  if (gaps == j.end() || !gaps->is_object()) return Bad("no object \"gaps\"");
  GapParts parts;
  for (const auto& [name, a] : gaps->items()) {
    if (!a.is_array() || a.size() != 5 || !a[0].is_number_unsigned() ||
        !a[1].is_number_unsigned() || !a[2].is_number_unsigned() || !a[3].is_number_integer() ||
        !a[4].is_number_integer()) {
      return Bad("the part of '" + name + "' is not [first_seq,last_seq,count,first_ms,last_ms]");
    }
    GapRange r{a[0].get<uint64_t>(), a[1].get<uint64_t>(), a[2].get<uint64_t>(),
               a[3].get<int64_t>(), a[4].get<int64_t>()};
    if (r.first_seq == 0 || r.first_seq > r.last_seq || r.count == 0 ||
        r.count > r.last_seq - r.first_seq + 1) {
      return Bad("the part of '" + name + "' is not a valid range");
    }
    parts.emplace(name, r);
  }
  *out = std::move(parts);
  return Status::Ok();
}

void MergeGapRange(const GapRange& add, GapRange* into) {
  if (add.count == 0) return;
  if (into->count == 0) {
    *into = add;
    return;
  }
  into->first_seq = std::min(into->first_seq, add.first_seq);
  into->last_seq = std::max(into->last_seq, add.last_seq);
  into->count += add.count;
  into->first_received_ms = std::min(into->first_received_ms, add.first_received_ms);
  into->last_received_ms = std::max(into->last_received_ms, add.last_received_ms);
}

}  // namespace sluice::storage
