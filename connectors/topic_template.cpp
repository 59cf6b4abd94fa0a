// SPDX-License-Identifier: Apache-2.0

#include "connectors/topic_template.h"

#include <utility>

namespace sluice::connectors {

namespace {

constexpr std::string_view kGateway = "gateway";
constexpr std::string_view kMqttTopic = "mqtt_topic";

Status InvalidTemplate(std::string_view tmpl, std::string_view problem) {
  std::string msg = "invalid MQTT topic template '";
  msg.append(tmpl);
  msg += "': ";
  msg.append(problem);
  return Status::InvalidArgument(msg);
}

// KeyPattern validated the pattern; its capture is the one level written "{name}".
std::string CaptureName(const KeyPattern& key) {
  std::string_view rest = key.pattern();
  while (!rest.empty()) {
    const size_t slash = rest.find('/');
    const std::string_view level = rest.substr(0, slash);
    if (level.size() >= 2 && level.front() == '{' && level.back() == '}') {
      return std::string(level.substr(1, level.size() - 2));
    }
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return "";
}

}  // namespace

Status TopicTemplate::Parse(std::string_view tmpl, const KeyPattern& key, TopicTemplate* out) {
  if (tmpl.empty()) return Status::InvalidArgument("invalid MQTT topic template: it is empty");
  if (tmpl.find('\0') != std::string_view::npos) {
    return InvalidTemplate(tmpl, "it contains a NUL character");
  }
  if (tmpl.find_first_of("+#") != std::string_view::npos) {
    return InvalidTemplate(tmpl, "'+' and '#' are wildcards, not allowed in a topic to publish to");
  }
  if (tmpl.front() == '$') {
    return InvalidTemplate(tmpl, "topics starting with '$' are reserved by the broker");
  }
  const std::string capture = CaptureName(key);
  auto allowed = [&] {
    std::string a = "{gateway}, {mqtt_topic}";
    if (!capture.empty())
      a += ", {" + capture + "} (the capture of key pattern '" + key.pattern() + "')";
    return a;
  };

  TopicTemplate parsed;
  parsed.text_ = std::string(tmpl);
  std::string literal;
  auto flush = [&] {
    if (literal.empty()) return;
    parsed.literal_bytes_ += literal.size();
    parsed.segments_.push_back({Kind::kLiteral, std::move(literal)});
    literal.clear();
  };
  for (size_t i = 0; i < tmpl.size(); ++i) {
    const char c = tmpl[i];
    if (c == '}') return InvalidTemplate(tmpl, "'}' without a '{' before it");
    if (c != '{') {
      literal += c;
      continue;
    }
    const size_t close = tmpl.find_first_of("{}", i + 1);
    if (close == std::string_view::npos || tmpl[close] != '}') {
      return InvalidTemplate(tmpl, "'{' without a '}' after it");
    }
    const std::string_view name = tmpl.substr(i + 1, close - i - 1);
    Kind kind;
    if (name == kGateway) {
      kind = Kind::kGateway;
    } else if (name == kMqttTopic) {
      kind = Kind::kMqttTopic;
    } else if (!capture.empty() && name == capture) {
      kind = Kind::kCapture;
    } else {
      return InvalidTemplate(
          tmpl, "unknown placeholder {" + std::string(name) + "}; allowed: " + allowed());
    }
    flush();
    parsed.segments_.push_back({kind, {}});
    if (kind != Kind::kGateway) parsed.per_event_ = true;
    i = close;
  }
  flush();
  *out = std::move(parsed);
  return Status::Ok();
}

std::string TopicTemplate::Expand(std::string_view gateway, std::string_view mqtt_topic,
                                  std::string_view capture) const {
  std::string topic;
  topic.reserve(literal_bytes_ + gateway.size() + mqtt_topic.size() + capture.size());
  for (const Segment& s : segments_) {
    switch (s.kind) {
      case Kind::kLiteral:
        topic += s.literal;
        break;
      case Kind::kGateway:
        topic.append(gateway);
        break;
      case Kind::kMqttTopic:
        topic.append(mqtt_topic);
        break;
      case Kind::kCapture:
        topic.append(capture);
        break;
    }
  }
  return topic;
}

}  // namespace sluice::connectors
