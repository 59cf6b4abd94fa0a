// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/device_profile.h"

namespace sluice::sim {

const DeviceProfile& DeviceProfile::Get(ProfileKind kind) {
  // Vibration: bursts of 8 samples at 4x the base rate on average (one burst every 2 base
  // periods). Alarms are rare (one per 20 base periods); doors change state every 5 base periods.
  // Telemetry and events that matter (alarms, doors) default to QoS 1; high-rate samples, whose
  // loss is tolerable, to QoS 0, as real fleets do.
  static const DeviceProfile kProfiles[kProfileCount] = {
      {ProfileKind::kTelemetry, "telemetry", 1, "telemetry", 1.0, 1, false},
      {ProfileKind::kVibration, "vibration", 0, "telemetry", 4.0, 8, false},
      {ProfileKind::kAlarm, "alarm", 1, "events", 0.05, 1, true},
      {ProfileKind::kDoor, "door", 1, "events", 0.2, 1, true},
  };
  return kProfiles[static_cast<size_t>(kind)];
}

const std::array<ProfileKind, kProfileCount>& DeviceProfile::All() {
  static const std::array<ProfileKind, kProfileCount> kAll = {
      ProfileKind::kTelemetry, ProfileKind::kVibration, ProfileKind::kAlarm, ProfileKind::kDoor};
  return kAll;
}

Status DeviceProfile::FromName(std::string_view name, ProfileKind* out) {
  for (ProfileKind kind : All()) {
    if (Get(kind).name() == name) {
      *out = kind;
      return Status::Ok();
    }
  }
  return Status::InvalidArgument("unknown device profile '" + std::string(name) +
                                 "' (known: telemetry, vibration, alarm, door)");
}

std::string DeviceProfile::Topic(std::string_view device_id) const {
  std::string topic = "devices/";
  topic.append(device_id).append("/").append(topic_suffix_);
  return topic;
}

std::string StatusTopic(std::string_view device_id) {
  std::string topic = "devices/";
  topic.append(device_id).append("/status");
  return topic;
}

}  // namespace sluice::sim
