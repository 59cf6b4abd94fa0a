// SPDX-License-Identifier: Apache-2.0

#include "connectors/topic_pattern.h"

#include <string>

#include <doctest/doctest.h>

namespace sluice::connectors {
namespace {

KeyPattern MustParse(std::string_view pattern) {
  KeyPattern p;
  Status s = KeyPattern::Parse(pattern, &p);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return p;
}

TEST_CASE("TopicMatchesFilter matches literal levels exactly") {
  CHECK(TopicMatchesFilter("a/b/c", "a/b/c"));
  CHECK_FALSE(TopicMatchesFilter("a/b/c", "a/b"));
  CHECK_FALSE(TopicMatchesFilter("a/b", "a/b/c"));
  CHECK_FALSE(TopicMatchesFilter("a/b", "a/B"));
  CHECK_FALSE(TopicMatchesFilter("a/b", "a/bc"));
  // Empty levels are levels: "a//b" has three and "/a" starts with an empty one.
  CHECK(TopicMatchesFilter("a//b", "a//b"));
  CHECK_FALSE(TopicMatchesFilter("a/b", "a//b"));
  CHECK_FALSE(TopicMatchesFilter("/a", "a"));
}

TEST_CASE("TopicMatchesFilter lets '+' match exactly one level, including an empty one") {
  CHECK(TopicMatchesFilter("devices/+/telemetry", "devices/pump-7/telemetry"));
  CHECK_FALSE(TopicMatchesFilter("devices/+/telemetry", "devices/a/b/telemetry"));
  CHECK_FALSE(TopicMatchesFilter("devices/+/telemetry", "devices/telemetry"));
  CHECK(TopicMatchesFilter("devices/+", "devices/"));
  CHECK_FALSE(TopicMatchesFilter("devices/+", "devices"));
  CHECK(TopicMatchesFilter("+", "a"));
  CHECK_FALSE(TopicMatchesFilter("+", "a/b"));
  CHECK(TopicMatchesFilter("+/+", "/"));
  CHECK(TopicMatchesFilter("/+", "/finance"));
  CHECK_FALSE(TopicMatchesFilter("+", "/finance"));
}

TEST_CASE("TopicMatchesFilter lets a trailing '#' match the rest including the parent level") {
  CHECK(TopicMatchesFilter("a/#", "a"));
  CHECK(TopicMatchesFilter("a/#", "a/"));
  CHECK(TopicMatchesFilter("a/#", "a/b"));
  CHECK(TopicMatchesFilter("a/#", "a/b/c/d"));
  CHECK_FALSE(TopicMatchesFilter("a/#", "ab"));
  CHECK_FALSE(TopicMatchesFilter("a/#", "b/a"));
  CHECK(TopicMatchesFilter("#", "a"));
  CHECK(TopicMatchesFilter("#", "a/b/c"));
  CHECK(TopicMatchesFilter("#", "/"));
  CHECK(TopicMatchesFilter("+/b/#", "x/b"));
  CHECK_FALSE(TopicMatchesFilter("+/b/#", "x/c/b"));
}

TEST_CASE("TopicMatchesFilter keeps '$' topics away from leading wildcards") {
  CHECK_FALSE(TopicMatchesFilter("#", "$SYS/broker/uptime"));
  CHECK_FALSE(TopicMatchesFilter("+/broker/uptime", "$SYS/broker/uptime"));
  CHECK(TopicMatchesFilter("$SYS/#", "$SYS/broker/uptime"));
  CHECK(TopicMatchesFilter("$SYS/broker/+", "$SYS/broker/uptime"));
  CHECK(TopicMatchesFilter("$SYS/#", "$SYS"));
  // Only a leading '$' is special.
  CHECK(TopicMatchesFilter("a/+", "a/$b"));
}

TEST_CASE("TopicMatchesFilter matches nothing for an empty filter or topic") {
  CHECK_FALSE(TopicMatchesFilter("", "a"));
  CHECK_FALSE(TopicMatchesFilter("#", ""));
  CHECK_FALSE(TopicMatchesFilter("", ""));
}

TEST_CASE("ValidateTopicFilter accepts well-formed filters") {
  for (const char* filter : {"a", "a/b", "#", "+", "a/#", "+/+/#", "/", "a//b", "$SYS/#",
                             "devices/+/telemetry", "ünïcödé/+"}) {
    CAPTURE(filter);
    Status s = ValidateTopicFilter(filter);
    CHECK_MESSAGE(s.ok(), s.ToString());
  }
  CHECK(ValidateTopicFilter(std::string(65535, 'a')).ok());
}

TEST_CASE("ValidateTopicFilter rejects misplaced wildcards and says which") {
  struct Case {
    const char* filter;
    const char* problem;
  };
  const Case cases[] = {
      {"a/#/b", "only as the last level"}, {"#/a", "only as the last level"},
      {"a#", "'#' must be a whole level"}, {"a/b#", "'#' must be a whole level"},
      {"a+", "'+' must be a whole level"}, {"a/+b/c", "'+' must be a whole level"},
      {"##", "'#' must be a whole level"},
  };
  for (const Case& tc : cases) {
    CAPTURE(tc.filter);
    Status s = ValidateTopicFilter(tc.filter);
    REQUIRE_FALSE(s.ok());
    CHECK(s.code() == Status::Code::kInvalidArgument);
    CHECK(s.message().find(tc.problem) != std::string::npos);
    CHECK(s.message().find(tc.filter) != std::string::npos);
  }
}

TEST_CASE("ValidateTopicFilter rejects empty, oversized, NUL and ill-formed UTF-8 filters") {
  CHECK(ValidateTopicFilter("").message().find("empty") != std::string::npos);
  CHECK(ValidateTopicFilter(std::string(65536, 'a')).message().find("65535") != std::string::npos);
  CHECK(ValidateTopicFilter(std::string("a\0b", 3)).message().find("NUL") != std::string::npos);
  CHECK(ValidateTopicFilter("a/\xff").message().find("UTF-8") != std::string::npos);
  // An overlong encoding of '/' and a UTF-16 surrogate are ill-formed too.
  CHECK_FALSE(ValidateTopicFilter("a\xc0\xaf").ok());
  CHECK_FALSE(ValidateTopicFilter("a\xed\xa0\x80").ok());
  CHECK_FALSE(ValidateTopicFilter("truncated\xe2\x82").ok());
}

TEST_CASE("KeyPattern extracts the captured level as the key") {
  KeyPattern p = MustParse("devices/{device}/#");
  CHECK(p.pattern() == "devices/{device}/#");
  CHECK(p.KeyFor("devices/pump-7/telemetry") == "pump-7");
  CHECK(p.KeyFor("devices/pump-7/events/alarm") == "pump-7");
  // '#' matches the parent level, as in a filter.
  CHECK(p.KeyFor("devices/pump-7") == "pump-7");
  REQUIRE(p.Capture("devices/pump-7/telemetry").has_value());
  CHECK(*p.Capture("devices/pump-7/telemetry") == "pump-7");
}

TEST_CASE("KeyPattern matches '+' and literal levels around the capture") {
  KeyPattern p = MustParse("site/+/{machine}/status");
  CHECK(p.KeyFor("site/berlin/press-4/status") == "press-4");
  CHECK_FALSE(p.Capture("site/berlin/press-4/status/extra").has_value());
  CHECK_FALSE(p.Capture("site/berlin/press-4").has_value());
  CHECK_FALSE(p.Capture("other/berlin/press-4/status").has_value());

  KeyPattern first = MustParse("{tenant}/+/#");
  CHECK(first.KeyFor("acme/devices/x/y") == "acme");
}

TEST_CASE("KeyPattern keys a non-matching topic by the whole topic") {
  KeyPattern p = MustParse("devices/{device}/telemetry");
  CHECK_FALSE(p.Capture("devices/pump-7/events").has_value());
  CHECK(p.KeyFor("devices/pump-7/events") == "devices/pump-7/events");
  CHECK(p.KeyFor("devices/pump-7") == "devices/pump-7");
  CHECK(p.KeyFor("devices/pump-7/telemetry/x") == "devices/pump-7/telemetry/x");
  CHECK_FALSE(p.Capture("").has_value());
}

TEST_CASE("KeyPattern without a capture keys by the whole topic") {
  KeyPattern empty = MustParse("");
  CHECK(empty.pattern().empty());
  CHECK(empty.KeyFor("devices/pump-7/telemetry") == "devices/pump-7/telemetry");
  CHECK_FALSE(empty.Capture("devices/pump-7/telemetry").has_value());

  KeyPattern no_capture = MustParse("devices/+/#");
  CHECK(no_capture.KeyFor("devices/pump-7/telemetry") == "devices/pump-7/telemetry");
  CHECK_FALSE(no_capture.Capture("devices/pump-7/telemetry").has_value());
}

// An empty key would be placed at random by librdkafka's default partitioner, so one publisher's
// events would scatter over partitions out of order; keyed by the whole topic they stay together.
TEST_CASE("KeyPattern keys a topic whose captured level is empty by the whole topic") {
  KeyPattern p = MustParse("devices/{device}/#");
  REQUIRE(p.Capture("devices//telemetry").has_value());
  CHECK(p.Capture("devices//telemetry")->empty());
  CHECK(p.KeyFor("devices//telemetry") == "devices//telemetry");
  CHECK(p.KeyFor("devices//x/y") == "devices//x/y");
  CHECK(p.KeyFor("devices/") == "devices/");

  KeyPattern first = MustParse("{site}/+/status");
  CHECK(first.KeyFor("/press-4/status") == "/press-4/status");
  KeyPattern last = MustParse("devices/{device}");
  CHECK(last.KeyFor("devices/") == "devices/");
  // A non-empty capture is unchanged.
  CHECK(p.KeyFor("devices/pump-7/telemetry") == "pump-7");
}

TEST_CASE("KeyPattern never derives an empty key from a non-empty topic") {
  for (const char* pattern : {"", "devices/{device}/#", "{a}", "+/{b}", "x/+/{c}/#"}) {
    KeyPattern p = MustParse(pattern);
    for (const char* topic : {"/", "//", "devices//", "devices///", "x//", "x///y", "a", "/a"}) {
      CAPTURE(pattern);
      CAPTURE(topic);
      CHECK_FALSE(p.KeyFor(topic).empty());
    }
  }
}

TEST_CASE("KeyPattern::Parse rejects invalid patterns and leaves the output unchanged") {
  struct Case {
    const char* pattern;
    const char* problem;
  };
  const Case cases[] = {
      {"devices/{a}/{b}", "at most one"},
      {"devices/{}/x", "needs a name"},
      {"devices/{dev-ice}/x", "may contain only"},
      {"devices/{dev/x}", "whole level"},
      {"devices/x{id}", "whole level"},
      {"devices/{id}x", "whole level"},
      {"devices/}", "whole level"},
      {"#/devices", "only as the last level"},
      {"devices/a#", "'#' must be a whole level"},
      {"devices/+x", "'+' must be a whole level"},
  };
  for (const Case& tc : cases) {
    CAPTURE(tc.pattern);
    KeyPattern p = MustParse("keep/{this}");
    Status s = KeyPattern::Parse(tc.pattern, &p);
    REQUIRE_FALSE(s.ok());
    CHECK(s.code() == Status::Code::kInvalidArgument);
    CHECK(s.message().find(tc.problem) != std::string::npos);
    CHECK(p.pattern() == "keep/{this}");
  }
  KeyPattern p;
  CHECK_FALSE(KeyPattern::Parse(std::string("a/\0/{x}", 7), &p).ok());
  CHECK_FALSE(KeyPattern::Parse(std::string(65536, 'a'), &p).ok());
}

TEST_CASE("KeyPattern accepts capture names of letters, digits and underscores") {
  KeyPattern p = MustParse("a/{Device_ID_2}/b");
  CHECK(p.KeyFor("a/x/b") == "x");
}

}  // namespace
}  // namespace sluice::connectors
