// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/verify_expectation.h"

#include <fstream>
#include <string>

#include <doctest/doctest.h>

#include "firmware-sim/fleet_summary.h"
#include "tests/test_util.h"

namespace sluice::sim {
namespace {

TEST_CASE("VerifyExpectation parses the simulator summary, sorted, ignoring other fields") {
  VerifyExpectation e;
  Status s = VerifyExpectation::Parse(R"({"run":"x","events":123,"devices":[
      {"device":"dev-002","published":9,"boots":[
          {"boot":2,"first_seq":1,"last_seq":0},
          {"boot":1,"first_seq":1,"last_seq":500,"dropped_by_device":[[40,41],[7,9]]}]},
      {"device":"dev-001","boots":[{"boot":1,"first_seq":3,"last_seq":10}]}]})",
                                      &e);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  REQUIRE(e.devices.size() == 2);
  CHECK(e.devices[0].device == "dev-001");
  CHECK(e.devices[0].boots.at(0).first_seq == 3);
  const auto& d2 = e.devices[1];
  REQUIRE(d2.boots.size() == 2);
  CHECK(d2.boots[0].boot == 1);
  CHECK(d2.boots[0].last_seq == 500);
  CHECK(d2.boots[0].dropped_by_device == std::vector<VerifyExpectation::Range>{{7, 9}, {40, 41}});
  CHECK(d2.boots[1].boot == 2);
  CHECK(d2.boots[1].last_seq == 0);  // a boot that published nothing
}

TEST_CASE("VerifyExpectation reads the summary FleetSummary writes") {
  FleetSummary fleet;
  DeviceSummary d;
  d.device = "dev-007";
  d.boots.push_back(BootSummary{1, 1, 120, {{3, 4}, {100, 120}}});
  d.boots.push_back(BootSummary{2, 1, 0, {}});  // rebooted, then produced nothing
  fleet.devices.push_back(d);
  VerifyExpectation e;
  Status s = VerifyExpectation::Parse(fleet.ToJson(), &e);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  REQUIRE(e.devices.size() == 1);
  CHECK(e.devices[0].device == "dev-007");
  REQUIRE(e.devices[0].boots.size() == 2);
  CHECK(e.devices[0].boots[0].last_seq == 120);
  CHECK(e.devices[0].boots[0].dropped_by_device ==
        std::vector<VerifyExpectation::Range>{{3, 4}, {100, 120}});
  CHECK(e.devices[0].boots[1].boot == 2);
  CHECK(e.devices[0].boots[1].last_seq == 0);
}

TEST_CASE("VerifyExpectation refuses summaries it cannot trust, naming the device and boot") {
  auto error_of = [](const std::string& json) {
    VerifyExpectation e;
    Status s = VerifyExpectation::Parse(json, &e);
    CHECK_FALSE(s.ok());
    return s.message();
  };
  CHECK(error_of("not json").find("not a JSON object") != std::string::npos);
  CHECK(error_of(R"({"devs":[]})").find("\"devices\"") != std::string::npos);
  CHECK(error_of(R"({"devices":[{"boots":[]}]})").find("\"device\"") != std::string::npos);
  CHECK(error_of(R"({"devices":[{"device":"d"}]})").find("device d: no \"boots\"") !=
        std::string::npos);
  CHECK(error_of(R"({"devices":[{"device":"d","boots":[{"boot":1,"first_seq":1}]}]})")
            .find("device d boot 1: missing \"last_seq\"") != std::string::npos);
  CHECK(error_of(R"({"devices":[{"device":"d","boots":[{"boot":1,"first_seq":1,"last_seq":-4}]}]})")
            .find("not a non-negative integer") != std::string::npos);
  CHECK(error_of(R"({"devices":[{"device":"d","boots":[{"boot":1,"first_seq":5,"last_seq":2}]}]})")
            .find("do not form a range") != std::string::npos);
  CHECK(error_of(R"({"devices":[{"device":"d","boots":[
            {"boot":1,"first_seq":1,"last_seq":9,"dropped_by_device":[[8,12]]}]}]})")
            .find("outside [first_seq, last_seq]") != std::string::npos);
  CHECK(error_of(R"({"devices":[{"device":"d","boots":[
            {"boot":1,"first_seq":1,"last_seq":9,"dropped_by_device":[[2,4],[4,5]]}]}]})")
            .find("overlap") != std::string::npos);
  CHECK(error_of(R"({"devices":[{"device":"d","boots":[
            {"boot":1,"first_seq":1,"last_seq":9,"dropped_by_device":[[3]]}]}]})")
            .find("is not [first, last]") != std::string::npos);
  CHECK(error_of(R"({"devices":[{"device":"d","boots":[{"boot":1,"first_seq":1,"last_seq":1},
            {"boot":1,"first_seq":1,"last_seq":1}]}]})")
            .find("boot 1 listed twice") != std::string::npos);
  CHECK(error_of(R"({"devices":[{"device":"d","boots":[]},{"device":"d","boots":[]}]})")
            .find("device d twice") != std::string::npos);
}

TEST_CASE("VerifyExpectation::LoadFile names the file in its errors") {
  sluice::testing::TempDir dir;
  VerifyExpectation e;
  Status s = VerifyExpectation::LoadFile(dir.File("missing.json"), &e);
  CHECK(s.code() == Status::Code::kIoError);
  CHECK(s.message().find("missing.json") != std::string::npos);

  std::ofstream(dir.File("bad.json")) << R"({"devices":7})";
  s = VerifyExpectation::LoadFile(dir.File("bad.json"), &e);
  CHECK_FALSE(s.ok());
  CHECK(s.message().find("bad.json") != std::string::npos);

  std::ofstream(dir.File("good.json"))
      << R"({"devices":[{"device":"a","boots":[{"boot":1,"first_seq":1,"last_seq":2}]}]})";
  s = VerifyExpectation::LoadFile(dir.File("good.json"), &e);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  CHECK(e.devices.at(0).device == "a");
}

}  // namespace
}  // namespace sluice::sim
