// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/verify_expectation.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

namespace sluice::sim {

namespace {

using nlohmann::json;

// nlohmann converts a negative number to uint64_t without complaint; a sequence number or boot
// must be a non-negative integer in the text itself.
Status GetUnsigned(const json& object, const char* field, const std::string& where, uint64_t max,
                   uint64_t* out) {
  auto it = object.find(field);
  if (it == object.end()) return Status::InvalidArgument(where + ": missing \"" + field + "\"");
  if (!it->is_number_unsigned() || it->get<uint64_t>() > max) {
    return Status::InvalidArgument(where + ": \"" + field +
                                   "\" is not a non-negative integer in range: " + it->dump());
  }
  *out = it->get<uint64_t>();
  return Status::Ok();
}

Status ParseBoot(const json& jb, const std::string& device_where, VerifyExpectation::Boot* out) {
  if (!jb.is_object()) return Status::InvalidArgument(device_where + ": a boot is not an object");
  VerifyExpectation::Boot b;
  uint64_t boot = 0;
  Status s = GetUnsigned(jb, "boot", device_where, std::numeric_limits<uint32_t>::max(), &boot);
  if (!s.ok()) return s;
  b.boot = static_cast<uint32_t>(boot);
  const std::string where = device_where + " boot " + std::to_string(b.boot);
  const uint64_t kMax = std::numeric_limits<uint64_t>::max();
  if (!(s = GetUnsigned(jb, "first_seq", where, kMax, &b.first_seq)).ok()) return s;
  if (!(s = GetUnsigned(jb, "last_seq", where, kMax, &b.last_seq)).ok()) return s;
  // last_seq = first_seq - 1 is the empty boot; anything lower is a contradiction.
  if (b.first_seq == 0 || b.last_seq + 1 < b.first_seq) {
    return Status::InvalidArgument(where + ": first_seq " + std::to_string(b.first_seq) +
                                   " and last_seq " + std::to_string(b.last_seq) +
                                   " do not form a range starting at 1 or later");
  }
  if (auto it = jb.find("dropped_by_device"); it != jb.end()) {
    if (!it->is_array()) {
      return Status::InvalidArgument(where + ": \"dropped_by_device\" is not an array");
    }
    for (const json& jr : *it) {
      if (!jr.is_array() || jr.size() != 2 || !jr[0].is_number_unsigned() ||
          !jr[1].is_number_unsigned()) {
        return Status::InvalidArgument(where + ": dropped range " + jr.dump() +
                                       " is not [first, last]");
      }
      VerifyExpectation::Range r{jr[0].get<uint64_t>(), jr[1].get<uint64_t>()};
      if (r.first > r.last || r.first < b.first_seq || r.last > b.last_seq) {
        return Status::InvalidArgument(where + ": dropped range " + jr.dump() +
                                       " is empty or outside [first_seq, last_seq]");
      }
      b.dropped_by_device.push_back(r);
    }
    std::sort(b.dropped_by_device.begin(), b.dropped_by_device.end(),
              [](const auto& x, const auto& y) { return x.first < y.first; });
    for (size_t i = 1; i < b.dropped_by_device.size(); ++i) {
      if (b.dropped_by_device[i].first <= b.dropped_by_device[i - 1].last) {
        return Status::InvalidArgument(where + ": dropped ranges overlap");
      }
    }
  }
  *out = std::move(b);
  return Status::Ok();
}

}  // namespace

Status VerifyExpectation::Parse(std::string_view text, VerifyExpectation* out) {
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::InvalidArgument("summary is not a JSON object");
  }
  auto jdevices = j.find("devices");
  if (jdevices == j.end() || !jdevices->is_array()) {
    return Status::InvalidArgument("summary has no \"devices\" array");
  }
  VerifyExpectation e;
  for (const json& jd : *jdevices) {
    if (!jd.is_object() || !jd.contains("device") || !jd["device"].is_string()) {
      return Status::InvalidArgument("summary: a device entry has no \"device\" string: " +
                                     jd.dump().substr(0, 80));
    }
    Device d;
    d.device = jd["device"].get<std::string>();
    const std::string where = "device " + d.device;
    auto jboots = jd.find("boots");
    if (jboots == jd.end() || !jboots->is_array()) {
      return Status::InvalidArgument(where + ": no \"boots\" array");
    }
    for (const json& jb : *jboots) {
      Boot b;
      Status s = ParseBoot(jb, where, &b);
      if (!s.ok()) return s;
      d.boots.push_back(std::move(b));
    }
    std::sort(d.boots.begin(), d.boots.end(),
              [](const Boot& x, const Boot& y) { return x.boot < y.boot; });
    for (size_t i = 1; i < d.boots.size(); ++i) {
      if (d.boots[i].boot == d.boots[i - 1].boot) {
        return Status::InvalidArgument(where + ": boot " + std::to_string(d.boots[i].boot) +
                                       " listed twice");
      }
    }
    e.devices.push_back(std::move(d));
  }
  std::sort(e.devices.begin(), e.devices.end(),
            [](const Device& x, const Device& y) { return x.device < y.device; });
  for (size_t i = 1; i < e.devices.size(); ++i) {
    if (e.devices[i].device == e.devices[i - 1].device) {
      return Status::InvalidArgument("summary lists device " + e.devices[i].device + " twice");
    }
  }
  *out = std::move(e);
  return Status::Ok();
}

Status VerifyExpectation::LoadFile(const std::string& path, VerifyExpectation* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IoError("cannot open expectation file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::IoError("cannot read expectation file " + path);
  Status s = Parse(text.str(), out);
  if (!s.ok()) return Status::InvalidArgument(path + ": " + s.message());
  return Status::Ok();
}

}  // namespace sluice::sim
