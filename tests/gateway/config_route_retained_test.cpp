// SPDX-License-Identifier: Apache-2.0

// [[route]] retained and [mqtt] protocol (docs/configuration.md).
#include <doctest/doctest.h>

#include <string>

#include "gateway/config.h"

namespace sluice::gateway {
namespace {

constexpr const char* kRouteHead = R"(
[[route]]
mqtt = "devices/+/telemetry"
kafka_topic = "telemetry"
)";

TEST_CASE("A route ingests retained messages of a new subscription unless it says skip") {
  Config config;
  REQUIRE(ParseConfig(std::string(kRouteHead) + R"(
[[route]]
mqtt = "status/#"
kafka_topic = "status"
retained = "skip"

[[route]]
mqtt = "config/#"
kafka_topic = "config"
retained = "ingest"
)",
                      "test.toml", &config)
              .ok());
  REQUIRE(config.routes.size() == 3);
  CHECK(config.routes[0].retained == RetainedPolicy::kIngest);
  CHECK(config.routes[1].retained == RetainedPolicy::kSkip);
  CHECK(config.routes[2].retained == RetainedPolicy::kIngest);
  // The source subscribes each route with its policy.
  REQUIRE(config.mqtt.subscriptions.size() == 3);
  CHECK(config.mqtt.subscriptions[0].ingest_retained);
  CHECK_FALSE(config.mqtt.subscriptions[1].ingest_retained);
  CHECK(config.mqtt.subscriptions[2].ingest_retained);
}

TEST_CASE("route.retained accepts only ingest or skip, naming the route") {
  Config config;
  Status s = ParseConfig(std::string(kRouteHead) + "retained = \"skp\"\n", "test.toml", &config);
  CHECK_FALSE(s.ok());
  CHECK(s.message().find("route[1].retained") != std::string::npos);
  CHECK(s.message().find("did you mean 'skip'") != std::string::npos);
  s = ParseConfig(std::string(kRouteHead) + "retained = false\n", "test.toml", &config);
  CHECK_FALSE(s.ok());
  CHECK(s.message().find("route[1].retained") != std::string::npos);
}

TEST_CASE("mqtt.protocol is MQTT 3.1.1 unless set to 5") {
  Config config;
  REQUIRE(ParseConfig(kRouteHead, "test.toml", &config).ok());
  CHECK(config.mqtt.connection.protocol == connectors::MqttProtocol::kV311);
  REQUIRE(ParseConfig(std::string("[mqtt]\nprotocol = \"5\"\n") + kRouteHead, "test.toml", &config)
              .ok());
  CHECK(config.mqtt.connection.protocol == connectors::MqttProtocol::kV5);
  Status s =
      ParseConfig(std::string("[mqtt]\nprotocol = \"3\"\n") + kRouteHead, "test.toml", &config);
  CHECK_FALSE(s.ok());
  CHECK(s.message().find("mqtt.protocol") != std::string::npos);
}

}  // namespace
}  // namespace sluice::gateway
