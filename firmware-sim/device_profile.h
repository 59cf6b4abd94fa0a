// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <array>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sluice::sim {

enum class ProfileKind { kTelemetry = 0, kVibration, kAlarm, kDoor };
inline constexpr size_t kProfileCount = 4;

// What a kind of simulated device publishes and how often: its topic, default QoS and the shape
// of its schedule relative to the fleet's base rate. The table of profiles is fixed; this class
// only describes it (docs/firmware-sim.md lists the same numbers). Immutable, thread-safe.
class DeviceProfile {
 public:
  static const DeviceProfile& Get(ProfileKind kind);
  // "telemetry", "vibration", "alarm" or "door"; InvalidArgument naming the known ones otherwise.
  static Status FromName(std::string_view name, ProfileKind* out);
  static const std::array<ProfileKind, kProfileCount>& All();

  ProfileKind kind() const { return kind_; }
  std::string_view name() const { return name_; }
  int default_qos() const { return default_qos_; }
  // devices/{id}/telemetry or devices/{id}/events.
  std::string Topic(std::string_view device_id) const;
  // Average events per second of one device of this profile at a base rate of 1 event/s.
  double rate_factor() const { return rate_factor_; }
  // Events due at the same instant: vibration samples come in bursts.
  int burst() const { return burst_; }
  // True for event-driven profiles (alarms, doors): each burst falls at a seeded random point
  // of its period rather than at its start, so the timing looks irregular while the average rate
  // stays exact.
  bool irregular() const { return irregular_; }

 private:
  constexpr DeviceProfile(ProfileKind kind, std::string_view name, int qos,
                          std::string_view topic_suffix, double rate_factor, int burst,
                          bool irregular)
      : kind_(kind),
        name_(name),
        default_qos_(qos),
        topic_suffix_(topic_suffix),
        rate_factor_(rate_factor),
        burst_(burst),
        irregular_(irregular) {}

  ProfileKind kind_;
  std::string_view name_;
  int default_qos_;
  std::string_view topic_suffix_;
  double rate_factor_;
  int burst_;
  bool irregular_;
};

// The topic of a device's retained online/offline status (and of its last will).
std::string StatusTopic(std::string_view device_id);

}  // namespace sluice::sim
