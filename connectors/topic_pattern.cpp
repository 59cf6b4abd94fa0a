// SPDX-License-Identifier: Apache-2.0

#include "connectors/topic_pattern.h"

#include <cstddef>
#include <cstdint>
#include <utility>

namespace sluice::connectors {

namespace {

// MQTT encodes topics as UTF-8 strings with a 16-bit length prefix (MQTT 3.1.1 section 1.5.3).
constexpr size_t kMaxTopicBytes = 65535;

// Walks the '/'-separated levels of a topic or filter without allocating: routing runs this for
// every incoming event. "a/" has two levels ("a" and ""), and "" has one empty level, as in MQTT.
class LevelCursor {
 public:
  explicit LevelCursor(std::string_view s) : rest_(s) {}

  bool Next(std::string_view* level) {
    if (done_) return false;
    const size_t slash = rest_.find('/');
    if (slash == std::string_view::npos) {
      *level = rest_;
      done_ = true;
    } else {
      *level = rest_.substr(0, slash);
      rest_.remove_prefix(slash + 1);
    }
    return true;
  }

 private:
  std::string_view rest_;
  bool done_ = false;
};

// Brokers close the connection of a client that sends ill-formed UTF-8 (MQTT 3.1.1 section 1.5.3),
// so a bad filter must be refused at configuration time rather than at every reconnect.
bool IsWellFormedUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are ill-formed.
    static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[len] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
    i += len;
  }
  return true;
}

Status InvalidFilter(std::string_view filter, std::string_view problem) {
  std::string msg = "invalid topic filter '";
  msg.append(filter);
  msg += "': ";
  msg.append(problem);
  return Status::InvalidArgument(msg);
}

Status InvalidPattern(std::string_view pattern, std::string_view problem) {
  std::string msg = "invalid key pattern '";
  msg.append(pattern);
  msg += "': ";
  msg.append(problem);
  return Status::InvalidArgument(msg);
}

bool IsCaptureNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

}  // namespace

bool TopicMatchesFilter(std::string_view filter, std::string_view topic) {
  // A topic name has at least one character (MQTT 3.1.1 section 4.7.3).
  if (filter.empty() || topic.empty()) return false;
  // Section 4.7.2: a filter starting with a wildcard must not match topics starting with '$', so
  // that "#" does not receive the broker's $SYS statistics.
  if (topic.front() == '$' && (filter.front() == '+' || filter.front() == '#')) return false;

  LevelCursor filter_levels(filter);
  LevelCursor topic_levels(topic);
  std::string_view f;
  std::string_view t;
  while (filter_levels.Next(&f)) {
    // '#' also matches the parent level: "sport/#" matches "sport" (section 4.7.1.2).
    if (f == "#") return true;
    if (!topic_levels.Next(&t)) return false;
    if (f != "+" && f != t) return false;
  }
  return !topic_levels.Next(&t);
}

Status ValidateTopicFilter(std::string_view filter) {
  if (filter.empty()) return Status::InvalidArgument("invalid topic filter: it is empty");
  if (filter.size() > kMaxTopicBytes) {
    return Status::InvalidArgument("invalid topic filter: it is " + std::to_string(filter.size()) +
                                   " bytes long, MQTT allows at most 65535");
  }
  if (filter.find('\0') != std::string_view::npos) {
    return InvalidFilter(filter, "it contains a NUL character");
  }
  if (!IsWellFormedUtf8(filter)) return InvalidFilter(filter, "it is not well-formed UTF-8");

  LevelCursor levels(filter);
  std::string_view level;
  bool seen_hash = false;
  while (levels.Next(&level)) {
    if (seen_hash) return InvalidFilter(filter, "'#' is allowed only as the last level");
    if (level.find('#') != std::string_view::npos) {
      if (level != "#") return InvalidFilter(filter, "'#' must be a whole level, e.g. \"a/#\"");
      seen_hash = true;
    }
    if (level.find('+') != std::string_view::npos && level != "+") {
      return InvalidFilter(filter, "'+' must be a whole level, e.g. \"a/+/b\"");
    }
  }
  return Status::Ok();
}

Status KeyPattern::Parse(std::string_view pattern, KeyPattern* out) {
  KeyPattern parsed;
  parsed.pattern_ = std::string(pattern);
  if (pattern.empty()) {
    *out = std::move(parsed);
    return Status::Ok();
  }
  if (pattern.size() > kMaxTopicBytes) {
    return Status::InvalidArgument("invalid key pattern: it is " + std::to_string(pattern.size()) +
                                   " bytes long, MQTT topics have at most 65535");
  }
  if (pattern.find('\0') != std::string_view::npos) {
    return InvalidPattern(pattern, "it contains a NUL character");
  }

  LevelCursor levels(pattern);
  std::string_view level;
  while (levels.Next(&level)) {
    if (parsed.trailing_hash_)
      return InvalidPattern(pattern, "'#' is allowed only as the last level");
    if (level.find('#') != std::string_view::npos) {
      if (level != "#") return InvalidPattern(pattern, "'#' must be a whole level");
      parsed.trailing_hash_ = true;
      continue;
    }
    if (level.find('+') != std::string_view::npos && level != "+") {
      return InvalidPattern(pattern, "'+' must be a whole level");
    }
    if (level.find_first_of("{}") != std::string_view::npos) {
      if (level.size() < 2 || level.front() != '{' || level.back() != '}') {
        return InvalidPattern(pattern,
                              "a capture must be a whole level, e.g. \"devices/{device}/#\"");
      }
      const std::string_view name = level.substr(1, level.size() - 2);
      if (name.empty()) return InvalidPattern(pattern, "a capture needs a name, e.g. {device}");
      for (char c : name) {
        if (!IsCaptureNameChar(c)) {
          return InvalidPattern(pattern, "capture name '" + std::string(name) +
                                             "' may contain only A-Z, a-z, 0-9 and '_'");
        }
      }
      if (parsed.capture_index_ >= 0) {
        return InvalidPattern(pattern, "at most one {capture} is allowed");
      }
      parsed.capture_index_ = static_cast<int>(parsed.levels_.size());
    }
    parsed.levels_.emplace_back(level);
  }
  *out = std::move(parsed);
  return Status::Ok();
}

std::optional<std::string_view> KeyPattern::Capture(std::string_view topic) const {
  // Without a capture there is nothing to return; KeyFor then keys by the whole topic.
  if (capture_index_ < 0 || topic.empty()) return std::nullopt;

  // Unlike a subscription filter, a pattern applies no '$' rule: it only ever sees topics that a
  // route's filter has already accepted.
  LevelCursor topic_levels(topic);
  std::string_view t;
  std::string_view captured;
  for (size_t i = 0; i < levels_.size(); ++i) {
    if (!topic_levels.Next(&t)) return std::nullopt;
    if (static_cast<int>(i) == capture_index_) {
      captured = t;
    } else if (levels_[i] != "+" && levels_[i] != t) {
      return std::nullopt;
    }
  }
  // A trailing '#' matches any remaining levels, including none ("a/#" matches "a").
  if (!trailing_hash_ && topic_levels.Next(&t)) return std::nullopt;
  return captured;
}

std::string KeyPattern::KeyFor(std::string_view topic) const {
  const std::optional<std::string_view> captured = Capture(topic);
  // An empty capture ("devices//x") would be an empty key, which librdkafka's default partitioner
  // places at random, scattering that publisher's events over partitions out of order. The whole
  // topic, as for a topic that does not match, is never empty (docs/kafka-records.md).
  return std::string(captured && !captured->empty() ? *captured : topic);
}

}  // namespace sluice::connectors
