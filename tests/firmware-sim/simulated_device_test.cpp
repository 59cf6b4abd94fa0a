// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/simulated_device.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace sluice::sim {
namespace {

std::vector<std::string> Payloads(SimulatedDevice& d, int n, int64_t ts0) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(d.NextEvent(ts0 + i * 1000).Encode(0));
  return out;
}

TEST_CASE("SimulatedDevice numbers events from seq 1 in boot 1, one by one") {
  SimulatedDevice d("dev-001", ProfileKind::kTelemetry, 42);
  CHECK(d.boot() == 1);
  CHECK(d.last_seq() == 0);
  for (uint64_t want = 1; want <= 5; ++want) {
    const DeviceEvent e = d.NextEvent(1000);
    CHECK(e.device == "dev-001");
    CHECK(e.boot == 1);
    CHECK(e.seq == want);
    CHECK(e.profile == "telemetry");
  }
  CHECK(d.last_seq() == 5);
}

TEST_CASE("SimulatedDevice restarts seq at 1 and increments boot after a reboot") {
  SimulatedDevice d("dev-002", ProfileKind::kDoor, 7);
  for (int i = 0; i < 3; ++i) d.NextEvent(0);
  d.Reboot();
  CHECK(d.boot() == 2);
  CHECK(d.last_seq() == 0);
  DeviceEvent e = d.NextEvent(0);
  CHECK(e.boot == 2);
  CHECK(e.seq == 1);
  CHECK(d.NextEvent(0).seq == 2);
  d.Reboot();
  d.Reboot();  // a reboot before any event of boot 3
  e = d.NextEvent(0);
  CHECK(e.boot == 4);
  CHECK(e.seq == 1);
}

TEST_CASE("SimulatedDevice payloads are byte-identical for the same seed and timestamps") {
  for (ProfileKind kind : DeviceProfile::All()) {
    CAPTURE(DeviceProfile::Get(kind).name());
    SimulatedDevice a("dev-003", kind, 1234);
    SimulatedDevice b("dev-003", kind, 1234);
    const auto pa = Payloads(a, 20, 1764000000000);
    const auto pb = Payloads(b, 20, 1764000000000);
    CHECK(pa == pb);
    a.Reboot();
    b.Reboot();
    CHECK(Payloads(a, 5, 1764000100000) == Payloads(b, 5, 1764000100000));
  }
}

TEST_CASE("SimulatedDevice payloads differ for a different seed") {
  for (ProfileKind kind : DeviceProfile::All()) {
    CAPTURE(DeviceProfile::Get(kind).name());
    SimulatedDevice a("dev-003", kind, 1234);
    SimulatedDevice b("dev-003", kind, 1235);
    CHECK(Payloads(a, 20, 1764000000000) != Payloads(b, 20, 1764000000000));
  }
}

TEST_CASE("SimulatedDevice payloads decode as device events with the profile's data") {
  SimulatedDevice t("dev-004", ProfileKind::kTelemetry, 1);
  DeviceEvent e;
  REQUIRE(DeviceEvent::Decode(t.NextEvent(1764000000123).Encode(300), &e).ok());
  CHECK(e.device == "dev-004");
  CHECK(e.ts_ms == 1764000000123);
  CHECK(e.data_json.find("\"temperature_c\":") != std::string::npos);
  CHECK(e.data_json.find("\"humidity_pct\":") != std::string::npos);

  SimulatedDevice v("dev-005", ProfileKind::kVibration, 1);
  for (int i = 0; i < 9; ++i) e = v.NextEvent(0);
  // The 9th sample opens the second burst of 8.
  CHECK(e.data_json.find("\"burst\":2,\"sample\":1") != std::string::npos);

  SimulatedDevice door("dev-006", ProfileKind::kDoor, 1);
  const std::string first = door.NextEvent(0).data_json;
  const std::string second = door.NextEvent(0).data_json;
  const bool alternates = (first.find("\"open\"") != std::string::npos) ==
                          (second.find("\"closed\"") != std::string::npos);
  CHECK(alternates);

  SimulatedDevice alarm("dev-007", ProfileKind::kAlarm, 1);
  CHECK(alarm.NextEvent(0).data_json.find("\"code\":") != std::string::npos);
}

TEST_CASE("SimulatedDevice readings print as short decimals") {
  SimulatedDevice d("dev-008", ProfileKind::kTelemetry, 99);
  for (int i = 0; i < 200; ++i) {
    const std::string data = d.NextEvent(0).data_json;
    CAPTURE(data);
    // A value such as 23.650000000000002 would mean rounding went through an inexact multiply.
    CHECK(data.find("0000000") == std::string::npos);
    CHECK(data.find("9999999") == std::string::npos);
  }
}

}  // namespace
}  // namespace sluice::sim
