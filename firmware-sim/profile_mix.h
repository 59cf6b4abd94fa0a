// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "firmware-sim/device_profile.h"

namespace sluice::sim {

// How many devices of each profile a fleet has, and which device gets which profile.
// A value type; thread-compatible.
class ProfileMix {
 public:
  ProfileMix() = default;

  // Parses "telemetry:14,vibration:2,alarm:2,door:2". Counts may be 0; a profile may not appear
  // twice; the total must be at least 1. InvalidArgument says which item is wrong.
  static Status Parse(std::string_view spec, ProfileMix* out);
  // The default mix for `devices` devices: 70% telemetry, 10% each of vibration, alarm and door,
  // rounded by largest remainder (ties to the earlier profile), so 20 devices give 14/2/2/2.
  static ProfileMix Default(size_t devices);

  size_t total() const;
  size_t count(ProfileKind kind) const { return counts_[static_cast<size_t>(kind)]; }
  void set_count(ProfileKind kind, size_t n) { counts_[static_cast<size_t>(kind)] = n; }

  // The profile of each device, in device order: consecutive blocks in the order of the spec
  // given to Parse (telemetry, vibration, alarm, door for Default), so that a device's profile
  // is easy to predict when choosing one to reboot.
  std::vector<ProfileKind> Assign() const;

  // "telemetry:14,vibration:2,alarm:2,door:2", profiles with a count of 0 left out.
  std::string ToString() const;

 private:
  std::array<size_t, kProfileCount> counts_{};
  std::array<ProfileKind, kProfileCount> order_ = DeviceProfile::All();
};

}  // namespace sluice::sim
