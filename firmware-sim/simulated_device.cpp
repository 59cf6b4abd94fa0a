// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/simulated_device.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace sluice::sim {

namespace {

// Readings are rounded so that payloads stay short and read like real sensor values. Dividing
// by an exact power of ten gives the double nearest the decimal, which prints as that decimal
// (multiplying by 0.01 would print 23.650000000000002).
double Round(double v, int decimals) {
  const double scale = std::pow(10.0, decimals);
  return std::round(v * scale) / scale;
}

}  // namespace

SimulatedDevice::SimulatedDevice(std::string id, ProfileKind profile, uint64_t seed)
    : id_(std::move(id)), profile_(profile), rng_(seed) {
  temperature_c_ = rng_.Range(18.0, 26.0);
  humidity_pct_ = rng_.Range(30.0, 60.0);
  vibration_base_g_ = rng_.Range(0.05, 0.4);
  door_open_ = rng_.Below(2) == 1;
}

DeviceEvent SimulatedDevice::NextEvent(int64_t now_unix_ms) {
  DeviceEvent e;
  e.device = id_;
  e.boot = boot_;
  e.seq = ++seq_;
  e.ts_ms = now_unix_ms;
  e.profile = std::string(DeviceProfile::Get(profile_).name());
  switch (profile_) {
    case ProfileKind::kTelemetry:
      e.data_json = TelemetryData();
      break;
    case ProfileKind::kVibration:
      e.data_json = VibrationData();
      break;
    case ProfileKind::kAlarm:
      e.data_json = AlarmData();
      break;
    case ProfileKind::kDoor:
      e.data_json = DoorData();
      break;
  }
  return e;
}

void SimulatedDevice::Reboot() {
  ++boot_;
  seq_ = 0;
  door_changes_ = 0;
}

std::string SimulatedDevice::TelemetryData() {
  // A bounded random walk: consecutive readings are close, as a real room's are.
  temperature_c_ = std::clamp(temperature_c_ + rng_.Range(-0.2, 0.2), -10.0, 45.0);
  humidity_pct_ = std::clamp(humidity_pct_ + rng_.Range(-0.5, 0.5), 5.0, 95.0);
  nlohmann::ordered_json j;
  j["temperature_c"] = Round(temperature_c_, 2);
  j["humidity_pct"] = Round(humidity_pct_, 1);
  return j.dump();
}

std::string SimulatedDevice::VibrationData() {
  // The sample's position in its burst follows the seq, so every burst of a boot is numbered
  // the same way the schedule groups them.
  const uint64_t n = seq_ - 1;
  const auto burst = static_cast<uint64_t>(DeviceProfile::Get(ProfileKind::kVibration).burst());
  const double rms = vibration_base_g_ * rng_.Range(0.8, 1.25);
  nlohmann::ordered_json j;
  j["burst"] = n / burst + 1;
  j["sample"] = n % burst + 1;
  j["rms_g"] = Round(rms, 3);
  j["peak_g"] = Round(rms * rng_.Range(1.4, 3.0), 3);
  j["freq_hz"] = Round(rng_.Range(45.0, 55.0), 1);
  return j.dump();
}

std::string SimulatedDevice::AlarmData() {
  static constexpr const char* kCodes[] = {"OVERTEMP", "UNDERVOLTAGE", "TAMPER", "SENSOR_FAULT"};
  nlohmann::ordered_json j;
  j["code"] = kCodes[rng_.Below(4)];
  j["severity"] = rng_.Uniform() < 0.2 ? "critical" : "warning";
  j["value"] = Round(rng_.Range(0.0, 100.0), 1);
  return j.dump();
}

std::string SimulatedDevice::DoorData() {
  door_open_ = !door_open_;
  ++door_changes_;
  nlohmann::ordered_json j;
  j["state"] = door_open_ ? "open" : "closed";
  j["changes"] = door_changes_;
  j["battery_pct"] = static_cast<int>(rng_.Below(101));
  return j.dump();
}

}  // namespace sluice::sim
