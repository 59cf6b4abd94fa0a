// SPDX-License-Identifier: Apache-2.0

#include "connectors/mqtt_suback.h"

#include <doctest/doctest.h>

namespace sluice::connectors {
namespace {

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST_CASE("JudgeSuback accepts a QoS granted as requested, or above") {
  CHECK(JudgeSuback("a/#", 1, 1).kind == SubackVerdict::Kind::kGranted);
  CHECK(JudgeSuback("a/#", 0, 0).kind == SubackVerdict::Kind::kGranted);
  CHECK(JudgeSuback("a/#", 0, 1).kind == SubackVerdict::Kind::kGranted);
  CHECK(JudgeSuback("a/#", 1, 1).problem.empty());
}

TEST_CASE("JudgeSuback calls a QoS granted below the request a downgrade naming the filter") {
  const SubackVerdict v = JudgeSuback("devices/+/data", 1, 0);
  CHECK(v.kind == SubackVerdict::Kind::kDowngraded);
  CHECK(Contains(v.problem, "'devices/+/data'"));
  CHECK(Contains(v.problem, "QoS 0 instead of 1"));
}

TEST_CASE("JudgeSuback calls a failure code a refusal naming the filter and the reason") {
  // MQTT 3.1.1 has one failure code; MQTT 5 says why.
  const SubackVerdict v3 = JudgeSuback("denied/#", 1, 0x80);
  CHECK(v3.kind == SubackVerdict::Kind::kRefused);
  CHECK(Contains(v3.problem, "'denied/#'"));
  CHECK(Contains(v3.problem, "0x80"));
  const SubackVerdict v5 = JudgeSuback("denied/#", 1, 0x87);
  CHECK(v5.kind == SubackVerdict::Kind::kRefused);
  CHECK(Contains(v5.problem, "0x87 not authorized"));
  CHECK(JudgeSuback("a", 1, 0xA2).kind == SubackVerdict::Kind::kRefused);
}

TEST_CASE("JudgeSuback refuses a code that is neither a QoS nor a failure") {
  CHECK(JudgeSuback("a", 1, 3).kind == SubackVerdict::Kind::kRefused);
  CHECK(JudgeSuback("a", 1, -1).kind == SubackVerdict::Kind::kRefused);
}

}  // namespace
}  // namespace sluice::connectors
