#include "firmware-sim/device_event.h"

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

Status DeviceEvent::Decode(std::string_view payload, DeviceEvent* out) {
  auto j = nlohmann::json::parse(payload, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Status::InvalidArgument("payload is not a JSON object");
  try {
    if (j.value("v", 0) != kFormatVersion) {
      return Status::InvalidArgument("payload format version is not " +
                                     std::to_string(kFormatVersion));
    }
    DeviceEvent e;
    e.device = j.at("device").get<std::string>();
    e.boot = j.at("boot").get<uint32_t>();
    e.seq = j.at("seq").get<uint64_t>();
    e.ts_ms = j.at("ts").get<int64_t>();
    e.profile = j.value("profile", "");
    if (j.contains("data")) e.data_json = j["data"].dump();
    *out = std::move(e);
    return Status::Ok();
  } catch (const nlohmann::json::exception& ex) {
    return Status::InvalidArgument(std::string("payload is not a device event: ") + ex.what());
  }
}

}  // namespace sluice::sim
