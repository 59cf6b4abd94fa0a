// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sluice::connectors {

// MQTT topic filter matching (MQTT 3.1.1 section 4.7): '+' matches one level, '#' (last) matches
// the rest including the parent level, topics starting with '$' are not matched by a leading
// wildcard.
bool TopicMatchesFilter(std::string_view filter, std::string_view topic);

// Checks that a string is a valid MQTT topic filter; the message says what is wrong.
Status ValidateTopicFilter(std::string_view filter);

// Derives the Kafka message key from an MQTT topic, e.g. pattern "devices/{device}/#" turns
// "devices/pump-7/telemetry" into "pump-7". Levels: literals, '+', one named capture "{name}"
// (exactly one level), and a trailing '#'. A topic that does not match the pattern keys by the
// whole topic, as does an empty pattern and a capture of an empty level ("devices//x"), so a key
// is never empty (docs/kafka-records.md). Immutable after construction; thread-safe.
class KeyPattern {
 public:
  // Validates the pattern: at most one capture, '#' only last, no empty capture name.
  static Status Parse(std::string_view pattern, KeyPattern* out);

  // The key for a topic: the captured level, or the whole topic when there is no match, no capture
  // or an empty capture. Never empty for a non-empty topic.
  std::string KeyFor(std::string_view topic) const;
  // The captured level, or nullopt when the topic does not match the pattern.
  std::optional<std::string_view> Capture(std::string_view topic) const;

  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  std::vector<std::string> levels_;
  int capture_index_ = -1;
  bool trailing_hash_ = false;
};

}  // namespace sluice::connectors
