// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstdint>
#include <string>

#include "firmware-sim/device_event.h"
#include "firmware-sim/device_profile.h"
#include "firmware-sim/prng.h"

namespace sluice::sim {

// One simulated device's firmware state: its identity, boot counter, sequence number and the
// sensor state its readings come from. It knows nothing of time or MQTT: the fleet asks it for
// the next event when one is due and passes the send time in.
//
// Determinism: the readings come from a PRNG seeded at construction and from nothing else, so two
// devices built with the same arguments, asked for events with the same timestamps, produce
// byte-identical payloads. Not thread-safe: owned by the fleet's scheduler thread.
class SimulatedDevice {
 public:
  SimulatedDevice(std::string id, ProfileKind profile, uint64_t seed);

  const std::string& id() const { return id_; }
  ProfileKind profile() const { return profile_; }
  // Starts at 1; +1 per Reboot().
  uint32_t boot() const { return boot_; }
  // The seq of the last event produced in the current boot; 0 before the first one.
  uint64_t last_seq() const { return seq_; }

  // Produces the next event of the current boot (seq = last_seq() + 1), stamped `now_unix_ms`.
  DeviceEvent NextEvent(int64_t now_unix_ms);

  // A reboot: boot + 1, seq back to 0 so that the next event is seq 1. Sensor state that a real
  // device would re-read after a reboot (the door's position, the temperature) carries over;
  // per-boot counters start again.
  void Reboot();

 private:
  std::string TelemetryData();
  std::string VibrationData();
  std::string AlarmData();
  std::string DoorData();

  const std::string id_;
  const ProfileKind profile_;
  Prng rng_;
  uint32_t boot_ = 1;
  uint64_t seq_ = 0;

  // Sensor state, drawn from the seed at construction.
  double temperature_c_;
  double humidity_pct_;
  double vibration_base_g_;
  bool door_open_ = false;
  uint64_t door_changes_ = 0;  // this boot
};

}  // namespace sluice::sim
