// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/device_event.h"

#include <cstdint>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

namespace sluice::sim {

std::string DeviceEvent::Encode(size_t min_bytes) const {
  nlohmann::ordered_json j;
  j["v"] = kFormatVersion;
  j["device"] = device;
  j["boot"] = boot;
  j["seq"] = seq;
  j["ts"] = ts_ms;
  j["profile"] = profile;
  j["data"] = nlohmann::ordered_json::parse(data_json, nullptr, false);
  if (j["data"].is_discarded()) j["data"] = nlohmann::ordered_json::object();
  std::string out = j.dump();
  if (out.size() < min_bytes) {
    // ,"pad":"" adds 9 bytes before the padding characters themselves.
    const size_t fill = min_bytes - out.size() > 9 ? min_bytes - out.size() - 9 : 0;
    j["pad"] = std::string(fill, 'x');
    out = j.dump();
  }
  return out;
}

namespace {

// nlohmann converts any number to any arithmetic type unchecked: -1 becomes 2^64-1 and 1e300 is
// undefined behaviour. A topic can hold anything, so each field is checked in the text itself.
Status Unsigned(const nlohmann::json& j, const char* field, uint64_t max, uint64_t* out) {
  auto it = j.find(field);
  if (it == j.end()) {
    return Status::InvalidArgument(std::string("payload is not a device event: no \"") + field +
                                   "\"");
  }
  if (!it->is_number_unsigned() || it->get<uint64_t>() > max) {
    return Status::InvalidArgument(std::string("payload is not a device event: \"") + field +
                                   "\" is not an integer in 0.." + std::to_string(max));
  }
  *out = it->get<uint64_t>();
  return Status::Ok();
}

Status Signed(const nlohmann::json& j, const char* field, int64_t* out) {
  auto it = j.find(field);
  if (it == j.end()) {
    return Status::InvalidArgument(std::string("payload is not a device event: no \"") + field +
                                   "\"");
  }
  const bool fits =
      it->is_number_integer() &&
      (!it->is_number_unsigned() ||
       it->get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
  if (!fits) {
    return Status::InvalidArgument(std::string("payload is not a device event: \"") + field +
                                   "\" is not a 64-bit integer");
  }
  *out = it->get<int64_t>();
  return Status::Ok();
}

}  // namespace

Status DeviceEvent::Decode(std::string_view payload, DeviceEvent* out) {
  auto j = nlohmann::json::parse(payload, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Status::InvalidArgument("payload is not a JSON object");
  try {
    const auto v = j.find("v");
    if (v == j.end() || !v->is_number_integer() || v->get<int64_t>() != kFormatVersion) {
      return Status::InvalidArgument("payload format version is not " +
                                     std::to_string(kFormatVersion));
    }
    DeviceEvent e;
    e.device = j.at("device").get<std::string>();
    uint64_t boot = 0;
    Status s = Unsigned(j, "boot", std::numeric_limits<uint32_t>::max(), &boot);
    if (!s.ok()) return s;
    e.boot = static_cast<uint32_t>(boot);
    if (!(s = Unsigned(j, "seq", std::numeric_limits<uint64_t>::max(), &e.seq)).ok()) return s;
    if (!(s = Signed(j, "ts", &e.ts_ms)).ok()) return s;
    e.profile = j.value("profile", "");
    if (j.contains("data")) e.data_json = j["data"].dump();
    *out = std::move(e);
    return Status::Ok();
  } catch (const nlohmann::json::exception& ex) {
    return Status::InvalidArgument(std::string("payload is not a device event: ") + ex.what());
  }
}

}  // namespace sluice::sim
