// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/verify_gap.h"

#include <cstdint>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

namespace sluice::sim {

namespace {

Status Bad(const std::string& why) {
  return Status::InvalidArgument("not a gap record: " + why);
}

// As in DeviceEvent::Decode: each number is checked in the text, since nlohmann converts unchecked.
Status Unsigned(const nlohmann::json& j, const char* field, uint64_t* out) {
  auto it = j.find(field);
  if (it == j.end()) return Bad(std::string("no \"") + field + "\"");
  if (!it->is_number_unsigned()) {
    return Bad(std::string("\"") + field + "\" is not an unsigned 64-bit integer");
  }
  *out = it->get<uint64_t>();
  return Status::Ok();
}

Status Signed(const nlohmann::json& j, const char* field, int64_t* out) {
  auto it = j.find(field);
  if (it == j.end()) return Bad(std::string("no \"") + field + "\"");
  const bool fits =
      it->is_number_integer() &&
      (!it->is_number_unsigned() ||
       it->get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
  if (!fits) return Bad(std::string("\"") + field + "\" is not a 64-bit integer");
  *out = it->get<int64_t>();
  return Status::Ok();
}

Status Text(const nlohmann::json& j, const char* field, std::string* out) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_string()) {
    return Bad(std::string("\"") + field + "\" is not a string");
  }
  *out = it->get<std::string>();
  return Status::Ok();
}

}  // namespace

Status VerifyGap::Decode(std::string_view value, VerifyGap* out) {
  const auto j = nlohmann::json::parse(value, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Bad("value is not a JSON object");
  const auto type = j.find("type");
  if (type == j.end() || !type->is_string() || type->get<std::string>() != "gap") {
    return Bad("\"type\" is not \"gap\"");
  }
  VerifyGap g;
  Status s;
  if (!(s = Text(j, "gateway", &g.gateway)).ok()) return s;
  if (!(s = Text(j, "log", &g.log)).ok()) return s;
  if (!(s = Unsigned(j, "first_seq", &g.first_seq)).ok()) return s;
  if (!(s = Unsigned(j, "last_seq", &g.last_seq)).ok()) return s;
  if (!(s = Unsigned(j, "count", &g.count)).ok()) return s;
  if (!(s = Signed(j, "first_received_ms", &g.first_received_ms)).ok()) return s;
  if (!(s = Signed(j, "last_received_ms", &g.last_received_ms)).ok()) return s;
  if (g.first_seq > g.last_seq) {
    return Bad("first_seq " + std::to_string(g.first_seq) + " > last_seq " +
               std::to_string(g.last_seq));
  }
  // The range holds last - first + 1 seqs; computed so that [0, 2^64-1] cannot overflow.
  if (g.count == 0 || g.count - 1 > g.last_seq - g.first_seq) {
    return Bad("count " + std::to_string(g.count) + " does not fit the range " +
               std::to_string(g.first_seq) + "-" + std::to_string(g.last_seq));
  }
  *out = std::move(g);
  return Status::Ok();
}

}  // namespace sluice::sim
