// SPDX-License-Identifier: Apache-2.0

// Fuzzes MQTT topic filter validation and matching and key pattern capture
// (connectors/topic_pattern.h) against a straightforward reference implementation, and checks the
// properties routing relies on: a valid filter matches every topic built from it, and a capture is
// one whole level of the topic it came from.
//
// Input layout (FuzzedDataProvider): filter, key pattern, then bytes from which topics are built;
// the rest of the input is a free-form topic.

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/topic_pattern.h"

namespace sluice::connectors {
namespace {

[[noreturn]] void Fail(const char* what, std::string_view a, std::string_view b) {
  std::fprintf(stderr, "topic_pattern_fuzzer: %s\n  1: '%.*s'\n  2: '%.*s'\n", what,
               static_cast<int>(a.size()), a.data(), static_cast<int>(b.size()), b.data());
  std::abort();
}

std::vector<std::string_view> Split(std::string_view s) {
  std::vector<std::string_view> levels;
  size_t start = 0;
  for (;;) {
    const size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      levels.push_back(s.substr(start));
      return levels;
    }
    levels.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

// MQTT 3.1.1 section 4.7, written as plainly as possible; `dollar_rule` applies section 4.7.2.
bool ReferenceMatch(std::string_view filter, std::string_view topic, bool dollar_rule) {
  if (filter.empty() || topic.empty()) return false;
  if (dollar_rule && topic[0] == '$' && (filter[0] == '+' || filter[0] == '#')) return false;
  const std::vector<std::string_view> f = Split(filter);
  const std::vector<std::string_view> t = Split(topic);
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") return true;
    if (i >= t.size()) return false;
    if (f[i] != "+" && f[i] != t[i]) return false;
  }
  return f.size() == t.size();
}

// A level the fuzzer chose, with every '/' removed so that it stays one level.
std::string Level(FuzzedDataProvider* data) {
  std::string level = data->ConsumeRandomLengthString(16);
  std::erase(level, '/');
  return level;
}

// A topic the filter must match: '+' becomes any one level, '#' any number of levels (none too).
std::string TopicFromFilter(const std::vector<std::string_view>& levels, FuzzedDataProvider* data) {
  std::string topic;
  for (size_t i = 0; i < levels.size(); ++i) {
    if (levels[i] == "#") {
      const int extra = data->ConsumeIntegralInRange(0, 3);
      // '#' matches the parent level too, so "a/#" matches "a": then the '/' before it goes.
      if (extra == 0) {
        if (!topic.empty()) topic.pop_back();
      }
      for (int k = 0; k < extra; ++k) {
        if (k > 0) topic += '/';
        topic += Level(data);
      }
      return topic;
    }
    topic += levels[i] == "+" ? Level(data) : std::string(levels[i]);
    if (i + 1 < levels.size()) topic += '/';
  }
  return topic;
}

void CheckFilter(std::string_view filter, std::string_view free_topic, FuzzedDataProvider* data) {
  const bool valid = ValidateTopicFilter(filter).ok();
  const std::vector<std::string_view> levels = Split(filter);
  if (valid) {
    // What a valid filter must not contain, checked independently of the validator.
    if (filter.empty() || filter.size() > 65535 || filter.find('\0') != std::string_view::npos) {
      Fail("validator accepted an empty, oversized or NUL-containing filter", filter, "");
    }
    for (size_t i = 0; i < levels.size(); ++i) {
      const std::string_view l = levels[i];
      if (l.find('#') != std::string_view::npos && (l != "#" || i + 1 != levels.size())) {
        Fail("validator accepted a misplaced '#'", filter, "");
      }
      if (l.find('+') != std::string_view::npos && l != "+") {
        Fail("validator accepted a '+' inside a level", filter, "");
      }
    }
  }
  // Routing only ever matches validated filters, so only those must agree with the reference.
  if (!valid) {
    (void)TopicMatchesFilter(filter, free_topic);
    return;
  }
  if (TopicMatchesFilter(filter, free_topic) != ReferenceMatch(filter, free_topic, true)) {
    Fail("TopicMatchesFilter disagrees with the reference", filter, free_topic);
  }
  const std::string built = TopicFromFilter(levels, data);
  const bool dollar_excluded =
      !built.empty() && built[0] == '$' && (filter[0] == '+' || filter[0] == '#');
  if (!built.empty() && !dollar_excluded && !TopicMatchesFilter(filter, built)) {
    Fail("a filter does not match a topic built from it", filter, built);
  }
}

void CheckCapture(const KeyPattern& pattern, std::string_view topic) {
  const std::optional<std::string_view> captured = pattern.Capture(topic);
  const std::string key = pattern.KeyFor(topic);
  if (!captured) {
    if (key != topic) Fail("KeyFor without a capture is not the whole topic", topic, key);
    return;
  }
  // The capture must be a view into the topic (not a dangling copy) and exactly one level of it.
  const char* begin = topic.data();
  const char* end = topic.data() + topic.size();
  if (captured->data() < begin || captured->data() + captured->size() > end) {
    Fail("capture is not a substring of the topic", topic, *captured);
  }
  if (captured->find('/') != std::string_view::npos) {
    Fail("capture spans more than one level", topic, *captured);
  }
  // An empty capture ("devices//x") keys by the whole topic, never by an empty key.
  const std::string_view expected = captured->empty() ? topic : *captured;
  if (key != expected) Fail("KeyFor differs from Capture", key, expected);
}

// The filter that accepts the same topics as a key pattern: its capture becomes '+'.
std::string FilterOf(const std::vector<std::string_view>& levels) {
  std::string filter;
  for (size_t i = 0; i < levels.size(); ++i) {
    if (i > 0) filter += '/';
    const bool capture = levels[i].size() >= 2 && levels[i].front() == '{';
    filter += capture ? std::string_view("+") : levels[i];
  }
  return filter;
}

void CheckPattern(std::string_view text, std::string_view free_topic, FuzzedDataProvider* data) {
  KeyPattern pattern;
  if (!KeyPattern::Parse(text, &pattern).ok()) return;
  if (pattern.pattern() != text) Fail("pattern() is not the parsed text", text, pattern.pattern());
  if (text.find('\0') != std::string_view::npos) Fail("pattern with NUL accepted", text, "");
  CheckCapture(pattern, free_topic);
  if (text.empty()) return;

  const std::vector<std::string_view> levels = Split(text);
  size_t capture_index = levels.size();
  for (size_t i = 0; i < levels.size(); ++i) {
    if (!levels[i].empty() && levels[i].front() == '{') capture_index = i;
  }
  if (capture_index == levels.size()) {
    if (pattern.Capture(free_topic)) Fail("pattern without a capture captured", text, free_topic);
    return;
  }
  // A capture exists exactly when the topic matches the pattern read as a filter (no '$' rule:
  // patterns only see topics a route's filter has already accepted).
  const std::string filter = FilterOf(levels);
  if (pattern.Capture(free_topic).has_value() != ReferenceMatch(filter, free_topic, false)) {
    Fail("Capture disagrees with the pattern read as a filter", text, free_topic);
  }

  // A topic built from the pattern yields the level put in the capture's place.
  const std::string wanted = Level(data);
  std::string topic;
  for (size_t i = 0; i < levels.size(); ++i) {
    if (levels[i] == "#") {
      const int extra = data->ConsumeIntegralInRange(0, 2);
      for (int k = 0; k < extra; ++k) {
        if (i > 0 || k > 0) topic += '/';
        topic += Level(data);
      }
      break;
    }
    if (i > 0) topic += '/';
    topic += i == capture_index ? wanted : levels[i] == "+" ? Level(data) : std::string(levels[i]);
  }
  if (topic.empty()) return;  // not a topic MQTT can carry
  const std::optional<std::string_view> got = pattern.Capture(topic);
  if (!got || *got != wanted) Fail("capture of a topic built from the pattern", text, topic);
  CheckCapture(pattern, topic);
}

}  // namespace
}  // namespace sluice::connectors

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  FuzzedDataProvider data(bytes, size);
  const std::string filter = data.ConsumeRandomLengthString(256);
  const std::string pattern = data.ConsumeRandomLengthString(256);
  const std::string builder_bytes = data.ConsumeRandomLengthString(256);
  const std::string free_topic = data.ConsumeRemainingBytesAsString();

  FuzzedDataProvider builder(reinterpret_cast<const uint8_t*>(builder_bytes.data()),
                             builder_bytes.size());
  sluice::connectors::CheckFilter(filter, free_topic, &builder);
  sluice::connectors::CheckPattern(pattern, free_topic, &builder);
  return 0;
}
