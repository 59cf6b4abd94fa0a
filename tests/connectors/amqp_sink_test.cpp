// SPDX-License-Identifier: Apache-2.0

// What the RabbitMQ upstream tells an operator during a resource alarm, from the reason the
// broker gives in connection.blocked (RabbitMQ: "low on " and the resources, joined by " & ").
// The sink's behaviour during an alarm is tested against a real broker in
// tests/integration/rabbitmq_test.cpp.

#include "connectors/amqp_sink.h"

#include <doctest/doctest.h>

#include <string>

namespace sluice::connectors {
namespace {

bool Has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_CASE("A memory alarm's hold names the broker, its reason and the memory fix only") {
  const std::string s = ExplainResourceAlarm("amqps://rabbit:5671", "low on memory");
  INFO(s);
  CHECK(Has(s, "RabbitMQ broker amqps://rabbit:5671 blocks publishing"));
  CHECK(Has(s, "resource alarm, low on memory (connection.blocked)"));
  CHECK(Has(s, "raise its vm_memory_high_watermark"));
  CHECK_FALSE(Has(s, "disk"));
}

TEST_CASE("A disk alarm's hold asks for disk space or a lower disk_free_limit") {
  const std::string s = ExplainResourceAlarm("amqp://r:5672", "low on disk");
  INFO(s);
  CHECK(Has(s, "free disk space on the broker's data volume or lower its disk_free_limit"));
  CHECK_FALSE(Has(s, "vm_memory_high_watermark"));
}

TEST_CASE("Both alarms at once name both fixes; an unknown reason names every fix") {
  const std::string both = ExplainResourceAlarm("amqp://r:5672", "low on memory & disk");
  INFO(both);
  CHECK(Has(both, "vm_memory_high_watermark"));
  CHECK(Has(both, "disk_free_limit"));
  const std::string unknown = ExplainResourceAlarm("amqp://r:5672", "");
  INFO(unknown);
  CHECK(Has(unknown, "no reason given"));
  CHECK(Has(unknown, "vm_memory_high_watermark"));
  CHECK(Has(unknown, "disk_free_limit"));
}

}  // namespace
}  // namespace sluice::connectors
