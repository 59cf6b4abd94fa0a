// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "connectors/topic_pattern.h"

namespace sluice::connectors {

// An MQTT upstream's topic template, e.g. "site/{gateway}/{device}/telemetry" or "{mqtt_topic}"
// (docs/configuration.md). Placeholders: {gateway} (the gateway id), {mqtt_topic} (the topic the
// event arrived on) and the capture of the route's key pattern (e.g. {device} for
// "devices/{device}/#"). The template is parsed once, at configuration time, into literal and
// placeholder segments, so that expanding it per event is a few appends.
//
// Immutable after Parse; thread-safe.
class TopicTemplate {
 public:
  // Parses `tmpl` for a route whose key pattern is `key` (a gap topic passes an empty pattern:
  // only {gateway} and {mqtt_topic} then). InvalidArgument, quoting the template, for an unknown
  // placeholder (naming it and the allowed ones), an unbalanced brace, an empty template, a '+' or
  // '#' (a published topic has no wildcards), a NUL, or a leading '$' (brokers reserve those
  // topics).
  static Status Parse(std::string_view tmpl, const KeyPattern& key, TopicTemplate* out);

  // The topic for one event. `capture` is what the key pattern's capture stands for in this event
  // (the sink passes KeyPattern::KeyFor, so a topic that does not match the pattern puts the
  // whole MQTT topic there, as for a Kafka key). REQUIRES: `gateway` and `capture` contain no
  // '+' or '#' (MQTT topic names never do; the sink checks the gateway id once).
  std::string Expand(std::string_view gateway, std::string_view mqtt_topic,
                     std::string_view capture) const;

  // True if the template names {mqtt_topic} or the key capture, i.e. its topic depends on the
  // event; false for e.g. "sluice/{gateway}/gaps".
  bool PerEvent() const { return per_event_; }
  const std::string& text() const { return text_; }

 private:
  enum class Kind { kLiteral, kGateway, kMqttTopic, kCapture };
  struct Segment {
    Kind kind;
    std::string literal;  // kLiteral only
  };

  std::string text_;
  std::vector<Segment> segments_;
  size_t literal_bytes_ = 0;
  bool per_event_ = false;
};

}  // namespace sluice::connectors
