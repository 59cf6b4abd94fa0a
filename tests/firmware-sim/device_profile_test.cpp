// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/device_profile.h"

#include <doctest/doctest.h>

namespace sluice::sim {
namespace {

TEST_CASE("DeviceProfile gives each profile its default QoS and topic") {
  const DeviceProfile& telemetry = DeviceProfile::Get(ProfileKind::kTelemetry);
  const DeviceProfile& vibration = DeviceProfile::Get(ProfileKind::kVibration);
  const DeviceProfile& alarm = DeviceProfile::Get(ProfileKind::kAlarm);
  const DeviceProfile& door = DeviceProfile::Get(ProfileKind::kDoor);
  CHECK(telemetry.default_qos() == 1);
  CHECK(vibration.default_qos() == 0);
  CHECK(alarm.default_qos() == 1);
  CHECK(door.default_qos() == 1);
  CHECK(telemetry.Topic("dev-001") == "devices/dev-001/telemetry");
  CHECK(vibration.Topic("dev-002") == "devices/dev-002/telemetry");
  CHECK(alarm.Topic("dev-003") == "devices/dev-003/events");
  CHECK(door.Topic("dev-004") == "devices/dev-004/events");
  CHECK(StatusTopic("dev-005") == "devices/dev-005/status");
}

TEST_CASE(
    "DeviceProfile shapes: vibration bursts fast, alarms are rare, doors and alarms irregular") {
  const DeviceProfile& telemetry = DeviceProfile::Get(ProfileKind::kTelemetry);
  const DeviceProfile& vibration = DeviceProfile::Get(ProfileKind::kVibration);
  CHECK(telemetry.rate_factor() == 1.0);
  CHECK(telemetry.burst() == 1);
  CHECK(vibration.burst() > 1);
  CHECK(vibration.rate_factor() > 1.0);
  CHECK(DeviceProfile::Get(ProfileKind::kAlarm).rate_factor() <
        DeviceProfile::Get(ProfileKind::kDoor).rate_factor());
  CHECK(DeviceProfile::Get(ProfileKind::kAlarm).irregular());
  CHECK(DeviceProfile::Get(ProfileKind::kDoor).irregular());
  CHECK_FALSE(telemetry.irregular());
}

TEST_CASE("DeviceProfile names round-trip and unknown names are refused") {
  for (ProfileKind kind : DeviceProfile::All()) {
    ProfileKind back = ProfileKind::kTelemetry;
    REQUIRE(DeviceProfile::FromName(DeviceProfile::Get(kind).name(), &back).ok());
    CHECK(back == kind);
  }
  ProfileKind out;
  Status s = DeviceProfile::FromName("thermostat", &out);
  CHECK(s.code() == Status::Code::kInvalidArgument);
  CHECK(s.message().find("thermostat") != std::string::npos);
}

}  // namespace
}  // namespace sluice::sim
