// Fuzzes the configuration parser (gateway/config.h ParseConfig) with arbitrary text. Beyond "no
// crash, no leak, no undefined behaviour", it checks the promises the rest of sluice builds on:
// a rejected configuration gets a message that names where it came from, and an accepted one
// holds only values the daemon can use as they are (the checks below restate docs/configuration.md
// independently of the parser).
//
// File keys (`password_file`) make the parser read that file: run the fuzzer where no file holds
// anything secret. ${CREDENTIALS_DIRECTORY} expands to a directory that does not exist.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "connectors/topic_pattern.h"
#include "gateway/config.h"

namespace sluice::gateway {
namespace {

constexpr std::string_view kOrigin = "fuzz.toml";

[[noreturn]] void Fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "config_fuzzer: %s: '%.*s'\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

// Every string of an accepted configuration ends up in a C API (Paho, librdkafka, SQLite) that
// would silently cut it at a NUL.
void CheckNoNul(const char* key, std::string_view value) {
  if (value.find('\0') != std::string_view::npos) Fail("accepted a NUL character in", key);
}

void CheckAccepted(const Config& c) {
  CheckNoNul("gateway.id", c.gateway.id);
  CheckNoNul("storage.path", c.storage.path);
  CheckNoNul("mqtt.url", c.mqtt.url);
  CheckNoNul("mqtt.client_id", c.mqtt.client_id);
  CheckNoNul("mqtt.username", c.mqtt.username);
  CheckNoNul("mqtt.password", c.mqtt.password);
  CheckNoNul("mqtt.tls.ca_file", c.mqtt.tls.ca_file);
  CheckNoNul("mqtt.tls.cert_file", c.mqtt.tls.cert_file);
  CheckNoNul("mqtt.tls.key_file", c.mqtt.tls.key_file);
  CheckNoNul("kafka.brokers", c.kafka.brokers);
  CheckNoNul("kafka.sasl_password_file", c.kafka.sasl_password_file);
  CheckNoNul("metrics.listen", c.metrics.listen);
  CheckNoNul("metrics.address", c.metrics.address);
  for (const auto& [name, value] : c.kafka.properties) {
    CheckNoNul("kafka.properties name", name);
    CheckNoNul("kafka.properties value", value);
  }

  if (c.storage.path.empty()) Fail("accepted an empty", "storage.path");
  if (c.storage.max_bytes < 1024 * 1024) Fail("accepted a tiny", "storage.max_bytes");
  if (c.storage.max_event_bytes == 0 || c.storage.max_event_bytes > 16 * 1024 * 1024 ||
      c.storage.max_event_bytes >= c.storage.max_bytes) {
    Fail("accepted an impossible", "storage.max_event_bytes");
  }
  if (c.storage.commit_interval_ms == 0 || c.storage.commit_max_events == 0) {
    Fail("accepted a zero", "storage.commit_*");
  }
  if (c.mqtt.client_id.empty() || c.mqtt.client_id.size() > 65535) {
    Fail("accepted a client id MQTT cannot carry", c.mqtt.client_id);
  }
  if (c.mqtt.username.size() > 65535 || c.mqtt.password.size() > 65535) {
    Fail("accepted credentials MQTT cannot carry", c.mqtt.username);
  }
  if (!c.mqtt.password.empty() && c.mqtt.username.empty()) {
    Fail("accepted a password without a user name", c.mqtt.password);
  }
  if (c.mqtt.reconnect_min_ms == 0 || c.mqtt.reconnect_min_ms > c.mqtt.reconnect_max_ms) {
    Fail("accepted an inverted", "mqtt.reconnect_*_ms");
  }
  if (c.kafka.brokers.empty()) Fail("accepted an empty", "kafka.brokers");

  if (c.routes.empty()) Fail("accepted a configuration without", "[[route]]");
  std::set<std::string> filters;
  for (const RouteConfig& r : c.routes) {
    if (!connectors::ValidateTopicFilter(r.mqtt_filter).ok()) Fail("bad filter", r.mqtt_filter);
    if (!filters.insert(r.mqtt_filter).second) Fail("duplicate filter", r.mqtt_filter);
    if (r.kafka_topic.empty() || r.kafka_topic.size() > 249) Fail("bad topic", r.kafka_topic);
    for (char ch : r.kafka_topic) {
      const bool legal = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                         (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
      if (!legal) Fail("illegal character in Kafka topic", r.kafka_topic);
    }
    connectors::KeyPattern pattern;
    if (!connectors::KeyPattern::Parse(r.key_pattern, &pattern).ok()) {
      Fail("bad key pattern", r.key_pattern);
    }
    if (r.qos < 0 || r.qos > 2) Fail("bad qos", std::to_string(r.qos));
  }
}

}  // namespace
}  // namespace sluice::gateway

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace sluice::gateway;
  const std::string text(reinterpret_cast<const char*>(bytes), size);
  Config config;
  ConfigEnvironment env;
  env.credentials_directory = "/nonexistent/sluice-fuzz-credentials";
  const sluice::Status status = ParseConfig(text, std::string(kOrigin), &config, env);
  if (status.ok()) {
    CheckAccepted(config);
  } else {
    // An operator must be able to tell which file is wrong, and why.
    const std::string& message = status.message();
    if (message.rfind(std::string(kOrigin) + ":", 0) != 0 || message.size() <= kOrigin.size() + 2) {
      Fail("error message does not start with the file name", message);
    }
  }
  return 0;
}
