// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/profile_mix.h"

#include <doctest/doctest.h>

#include <algorithm>

namespace sluice::sim {
namespace {

TEST_CASE("ProfileMix parses counts and assigns them in blocks, in the order given") {
  ProfileMix mix;
  REQUIRE(ProfileMix::Parse("door:2,telemetry:3,alarm:1", &mix).ok());
  CHECK(mix.total() == 6);
  CHECK(mix.count(ProfileKind::kDoor) == 2);
  CHECK(mix.count(ProfileKind::kTelemetry) == 3);
  CHECK(mix.count(ProfileKind::kAlarm) == 1);
  CHECK(mix.count(ProfileKind::kVibration) == 0);
  const std::vector<ProfileKind> want = {ProfileKind::kDoor,      ProfileKind::kDoor,
                                         ProfileKind::kTelemetry, ProfileKind::kTelemetry,
                                         ProfileKind::kTelemetry, ProfileKind::kAlarm};
  CHECK(mix.Assign() == want);
  CHECK(mix.ToString() == "door:2,telemetry:3,alarm:1");
}

TEST_CASE("ProfileMix default for 20 devices is 14/2/2/2 and always adds up") {
  const ProfileMix mix = ProfileMix::Default(20);
  CHECK(mix.count(ProfileKind::kTelemetry) == 14);
  CHECK(mix.count(ProfileKind::kVibration) == 2);
  CHECK(mix.count(ProfileKind::kAlarm) == 2);
  CHECK(mix.count(ProfileKind::kDoor) == 2);
  CHECK(mix.ToString() == "telemetry:14,vibration:2,alarm:2,door:2");
  for (size_t n = 1; n <= 200; ++n) {
    CAPTURE(n);
    const ProfileMix m = ProfileMix::Default(n);
    CHECK(m.total() == n);
    CHECK(m.Assign().size() == n);
    CHECK(m.count(ProfileKind::kTelemetry) >= m.count(ProfileKind::kVibration));
  }
  CHECK(ProfileMix::Default(1).count(ProfileKind::kTelemetry) == 1);
}

TEST_CASE("ProfileMix refuses malformed specs with the offending item") {
  ProfileMix mix;
  for (const char* bad : {"telemetry", "telemetry:x", "telemetry:-1", "fridge:2",
                          "telemetry:2,telemetry:3", "telemetry:0", "", "telemetry:2,"}) {
    CAPTURE(bad);
    Status s = ProfileMix::Parse(bad, &mix);
    CHECK(s.code() == Status::Code::kInvalidArgument);
    CHECK(s.message().find("--profiles") != std::string::npos);
  }
}

}  // namespace
}  // namespace sluice::sim
