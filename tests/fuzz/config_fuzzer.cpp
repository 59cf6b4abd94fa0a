// SPDX-License-Identifier: Apache-2.0

// Fuzzes the configuration parser (gateway/config.h ParseConfig) with arbitrary text. Beyond "no
// crash, no leak, no undefined behaviour", it checks the promises the rest of sluice builds on:
// a rejected configuration gets a message that names where it came from, and an accepted one
// holds only values the daemon can use as they are (the checks below restate docs/configuration.md
// independently of the parser).
//
// File keys (`password_file`) make the parser read that file: run the fuzzer where no file holds
// anything secret. ${CREDENTIALS_DIRECTORY} expands to a directory that does not exist.

#include <algorithm>
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

void CheckConnection(const char* name, const connectors::MqttConnection& m) {
  CheckNoNul(name, m.url);
  CheckNoNul(name, m.client_id);
  CheckNoNul(name, m.username);
  CheckNoNul(name, m.password);
  CheckNoNul(name, m.ca_file);
  CheckNoNul(name, m.cert_file);
  CheckNoNul(name, m.key_file);
  if (m.client_id.empty() || m.client_id.size() > 65535) {
    Fail("accepted a client id MQTT cannot carry", m.client_id);
  }
  if (m.username.size() > 65535 || m.password.size() > 65535) {
    Fail("accepted credentials MQTT cannot carry", m.username);
  }
  if (!m.password.empty() && m.username.empty()) {
    Fail("accepted a password without a user name", name);
  }
  if (m.reconnect_min.count() <= 0 || m.reconnect_min > m.reconnect_max) {
    Fail("accepted an inverted reconnect delay in", name);
  }
  // Paho takes TLS from the scheme: a disagreement would send a password in clear text.
  const bool tls_url =
      m.url.starts_with("ssl://") || m.url.starts_with("mqtts://") || m.url.starts_with("wss://");
  if (m.tls != tls_url) Fail("accepted TLS that disagrees with the URL", m.url);
}

bool LegalKafkaTopic(std::string_view topic) {
  if (topic.empty() || topic.size() > 249 || topic == "." || topic == "..") return false;
  for (char ch : topic) {
    const bool legal = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                       (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
    if (!legal) return false;
  }
  return true;
}

bool LegalKinesisStream(std::string_view stream) {
  if (stream.empty() || stream.size() > 128) return false;
  for (char ch : stream) {
    const bool legal = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                       (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
    if (!legal) return false;
  }
  return true;
}

void CheckAccepted(const Config& c) {
  CheckNoNul("gateway.id", c.gateway.id);
  CheckNoNul("storage.path", c.storage.path);
  CheckNoNul("metrics.listen", c.metrics.listen);
  CheckNoNul("metrics.address", c.metrics.address);
  CheckConnection("mqtt", c.mqtt.connection);

  if (c.storage.path.empty()) Fail("accepted an empty", "storage.path");
  if (c.storage.max_bytes < 1024 * 1024) Fail("accepted a tiny", "storage.max_bytes");
  if (c.mqtt.max_event_bytes == 0 || c.mqtt.max_event_bytes > 16 * 1024 * 1024 ||
      c.mqtt.max_event_bytes >= c.storage.max_bytes) {
    Fail("accepted an impossible", "storage.max_event_bytes");
  }
  if (c.storage.retain_bytes >= c.storage.max_bytes) {
    Fail("accepted a retention budget that fills the log", "storage.retain_bytes");
  }
  if (c.writer.commit_interval.count() <= 0 || c.writer.commit_max_events == 0) {
    Fail("accepted a zero", "storage.commit_*");
  }

  if (c.upstreams.empty()) Fail("accepted a configuration without", "an upstream");
  if (c.storage.cursors.size() != c.upstreams.size()) Fail("cursors do not match", "upstreams");
  std::set<std::string> names;
  for (size_t i = 0; i < c.upstreams.size(); ++i) {
    const UpstreamConfig& u = c.upstreams[i];
    if (u.name.empty() || u.name.size() > 64 || !names.insert(u.name).second) {
      Fail("bad upstream name", u.name);
    }
    if (c.storage.cursors[i] != u.name) Fail("cursor out of order", u.name);
    if (u.kind == UpstreamKind::kKafka) {
      CheckNoNul("kafka.brokers", u.kafka.brokers);
      if (u.kafka.brokers.empty()) Fail("accepted empty brokers for", u.name);
      if (!LegalKafkaTopic(u.kafka.gap_topic)) Fail("bad gap topic", u.kafka.gap_topic);
      for (const auto& [name, value] : u.kafka.properties) {
        CheckNoNul("kafka.properties name", name);
        CheckNoNul("kafka.properties value", value);
      }
    } else if (u.kind == UpstreamKind::kKinesis) {
      if (u.kinesis.region.empty()) Fail("accepted no region for", u.name);
      if (!u.kinesis.endpoint.empty() && u.kinesis.endpoint.rfind("https://", 0) != 0) {
        Fail("accepted an endpoint that is not https://", u.kinesis.endpoint);
      }
      if (u.kinesis.credentials.access_key_id.empty() ||
          u.kinesis.credentials.secret_access_key.empty()) {
        Fail("accepted no credentials for", u.name);
      }
      if (!LegalKinesisStream(u.kinesis.gap_stream)) Fail("bad gap stream", u.kinesis.gap_stream);
    } else if (u.kind == UpstreamKind::kRabbitmq) {
      const connectors::AmqpEndpoint& e = u.rabbitmq.endpoint;
      connectors::AmqpAddress address;
      if (!connectors::ParseAmqpUrl(e.url, &address).ok()) Fail("bad AMQP URL", e.url);
      if (e.vhost.empty() || e.vhost.size() > 255) Fail("bad vhost", e.vhost);
      if (u.rabbitmq.exchange.size() > 255) Fail("exchange too long", u.rabbitmq.exchange);
      if (u.rabbitmq.max_in_flight == 0) Fail("accepted no in-flight window for", u.name);
    } else {
      CheckConnection("upstream", u.mqtt.connection);
      if (u.mqtt.max_in_flight == 0) Fail("accepted no in-flight window for", u.name);
    }
    const bool fed = std::any_of(c.routes.begin(), c.routes.end(), [&](const RouteConfig& r) {
      return std::any_of(r.targets.begin(), r.targets.end(),
                         [&](const RouteTarget& t) { return t.upstream == u.name; });
    });
    if (!fed) Fail("accepted an upstream no route feeds", u.name);
  }

  if (c.routes.empty()) Fail("accepted a configuration without", "[[route]]");
  if (c.mqtt.subscriptions.size() != c.routes.size()) Fail("subscriptions do not match", "routes");
  std::set<std::string> filters;
  for (const RouteConfig& r : c.routes) {
    if (!connectors::ValidateTopicFilter(r.mqtt_filter).ok()) Fail("bad filter", r.mqtt_filter);
    if (!filters.insert(r.mqtt_filter).second) Fail("duplicate filter", r.mqtt_filter);
    if (r.targets.empty()) Fail("accepted a route to nowhere", r.mqtt_filter);
    for (const RouteTarget& t : r.targets) {
      const UpstreamConfig* u = FindUpstream(c, t.upstream);
      if (u == nullptr) Fail("route names an unknown upstream", t.upstream);
      if (u->kind == UpstreamKind::kKafka && !LegalKafkaTopic(t.target)) {
        Fail("illegal Kafka topic", t.target);
      }
      if (u->kind == UpstreamKind::kKinesis && !LegalKinesisStream(t.target)) {
        Fail("illegal Kinesis stream", t.target);
      }
      if (u->kind == UpstreamKind::kRabbitmq &&
          (t.target.empty() || t.target.size() > 255 || t.target.find('\0') != std::string::npos)) {
        Fail("illegal RabbitMQ routing key", t.target);
      }
      if (u->kind == UpstreamKind::kMqtt &&
          (t.target.empty() || t.target.find_first_of("+#") != std::string::npos)) {
        Fail("illegal MQTT topic template", t.target);
      }
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
