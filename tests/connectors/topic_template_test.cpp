// SPDX-License-Identifier: Apache-2.0

#include "connectors/topic_template.h"

#include <doctest/doctest.h>

using sluice::Status;
using sluice::connectors::KeyPattern;
using sluice::connectors::TopicTemplate;

namespace {

KeyPattern Key(const std::string& pattern) {
  KeyPattern k;
  REQUIRE(KeyPattern::Parse(pattern, &k).ok());
  return k;
}

std::string Expand(const std::string& tmpl, const std::string& key_pattern,
                   const std::string& mqtt_topic) {
  const KeyPattern key = Key(key_pattern);
  TopicTemplate t;
  const Status s = TopicTemplate::Parse(tmpl, key, &t);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return t.Expand("gw-1", mqtt_topic, key.KeyFor(mqtt_topic));
}

}  // namespace

TEST_CASE("TopicTemplate expands the gateway, the MQTT topic and the key capture") {
  CHECK(Expand("{mqtt_topic}", "", "devices/p7/telemetry") == "devices/p7/telemetry");
  CHECK(Expand("site/{gateway}/{device}/telemetry", "devices/{device}/#", "devices/p7/telemetry") ==
        "site/gw-1/p7/telemetry");
  CHECK(Expand("site/{gateway}/{mqtt_topic}", "", "a/b") == "site/gw-1/a/b");
  // A placeholder inside a level, twice, next to another.
  CHECK(Expand("x/{gateway}-{machine}/{machine}{gateway}", "site/+/{machine}/status",
               "site/berlin/press-4/status") == "x/gw-1-press-4/press-4gw-1");
  CHECK(Expand("fixed/topic", "", "a") == "fixed/topic");
  // A topic the key pattern does not match: the capture stands for the whole topic, as the Kafka
  // key does.
  CHECK(Expand("s/{device}", "devices/{device}/telemetry", "devices/p7/events") ==
        "s/devices/p7/events");
}

TEST_CASE("TopicTemplate tells whether its topic depends on the event") {
  TopicTemplate t;
  REQUIRE(TopicTemplate::Parse("sluice/{gateway}/gaps", Key(""), &t).ok());
  CHECK_FALSE(t.PerEvent());
  REQUIRE(TopicTemplate::Parse("a/{mqtt_topic}", Key(""), &t).ok());
  CHECK(t.PerEvent());
  CHECK(t.text() == "a/{mqtt_topic}");
}

TEST_CASE("TopicTemplate refuses an unknown placeholder, naming it and the allowed ones") {
  TopicTemplate t;
  Status s = TopicTemplate::Parse("site/{devcie}/t", Key("devices/{device}/#"), &t);
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == Status::Code::kInvalidArgument);
  const std::string msg = s.message();
  CHECK_MESSAGE(msg.find("{devcie}") != std::string::npos, msg);
  CHECK_MESSAGE(msg.find("site/{devcie}/t") != std::string::npos, msg);
  CHECK_MESSAGE(msg.find("{gateway}, {mqtt_topic}, {device}") != std::string::npos, msg);

  // Without a capture in the key pattern, {device} is unknown.
  s = TopicTemplate::Parse("site/{device}", Key("devices/+/#"), &t);
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find("{device}") != std::string::npos);
  CHECK(s.message().find("allowed: {gateway}, {mqtt_topic}") != std::string::npos);
}

TEST_CASE("TopicTemplate refuses wildcards, unbalanced braces and reserved or empty topics") {
  TopicTemplate t;
  for (const char* bad :
       {"", "a/+/b", "a/#", "a/{gateway", "a/gateway}", "a/{{gateway}}", "$SYS/x", "a/{}/b"}) {
    const Status s = TopicTemplate::Parse(bad, Key(""), &t);
    CHECK_MESSAGE(!s.ok(), bad);
    CHECK(s.code() == Status::Code::kInvalidArgument);
  }
  CHECK_FALSE(TopicTemplate::Parse(std::string("a\0b", 3), Key(""), &t).ok());
  const Status s = TopicTemplate::Parse("a/+", Key(""), &t);
  CHECK(s.message().find("wildcard") != std::string::npos);
}
