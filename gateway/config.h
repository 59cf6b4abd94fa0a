// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "connectors/amqp_sink.h"
#include "connectors/kafka_sink.h"
#include "connectors/kinesis_sink.h"
#include "connectors/mqtt_sink.h"
#include "connectors/mqtt_source.h"
#include "gateway/config_secrets.h"
#include "storage/log_writer.h"
#include "storage/sqlite_event_log.h"

namespace sluice::gateway {

// The daemon's configuration, parsed from TOML: the schema. Every key, its default and its meaning
// are in docs/configuration.md; keep the two in step (tests/gateway/config_documented_test.cpp
// holds the page to the keys ListConfigKeys names). The parser fills the components' own options
// structs, which hold the defaults; what the daemon alone decides (logger, log id, clock) is left
// for it to set. Unknown keys are errors.

struct GatewayConfig {
  std::string id;                  // [gateway] id; default: the host name
  std::string log_level = "info";  // trace|debug|info|warn|error|critical|off
  // Hard bound on shutdown: parts that hang longer are abandoned and sluice exits 1.
  uint32_t stop_timeout_s = 30;
};

// The HTTP endpoint for /metrics, /healthz and /readyz (docs/operations.md).
struct MetricsConfig {
  bool enabled = false;
  std::string listen = "127.0.0.1:9464";  // HOST:PORT as written; [::1]:9464 for IPv6
  std::string address = "127.0.0.1";      // host part of `listen`, brackets removed
  uint16_t port = 9464;                   // port part of `listen`; 0: any free port
};

// [[route]] retained = "ingest" | "skip": whether retained messages the broker sends for a new
// subscription are logged. A resubscription never logs them again.
enum class RetainedPolicy { kIngest, kSkip };

enum class UpstreamKind { kKafka, kMqtt, kKinesis, kRabbitmq };

// One [upstream.NAME] block: where events go, and how to get there.
struct UpstreamConfig {
  std::string name;  // [A-Za-z0-9_-]{1,64}: the log's cursor name and the metrics label
  UpstreamKind kind = UpstreamKind::kKafka;
  // The options of its kind; the parser sets gateway_id, the daemon log_id.
  connectors::KafkaSinkOptions kafka;      // kKafka
  connectors::MqttSinkOptions mqtt;        // kMqtt
  connectors::KinesisSinkOptions kinesis;  // kKinesis
  connectors::AmqpSinkOptions rabbitmq;    // kRabbitmq
};

// Where one route's events go on one upstream.
struct RouteTarget {
  std::string upstream;  // an UpstreamConfig::name
  // Kafka: the topic. MQTT: the topic template, placeholders resolved per event ({gateway},
  // {mqtt_topic} and the captures of the route's key); `true` in the file is the upstream's
  // `topic`, already substituted here. Kinesis: the stream. RabbitMQ: the routing-key template
  // (the same placeholders); with the default exchange, the name of the stream or queue.
  std::string target;

  bool operator==(const RouteTarget&) const = default;
};

// One MQTT topic filter and where its events go.
struct RouteConfig {
  std::string mqtt_filter;  // [[route]] mqtt = "devices/+/telemetry"
  std::string key_pattern;  // [[route]] key = "devices/{device}/#"; empty: whole MQTT topic
  int qos = 1;              // [[route]] qos = 0|1|2
  RetainedPolicy retained = RetainedPolicy::kIngest;
  bool forward_retain = false;       // pass the MQTT RETAIN flag on to MQTT upstreams
  std::vector<RouteTarget> targets;  // [[route]] to = { NAME = target, ... }, in file order
};

struct Config {
  GatewayConfig gateway;
  // path, max_bytes, overflow, sync, retain_*; cursors = the upstreams' names, in order.
  storage::SqliteEventLogOptions storage;
  storage::LogWriterOptions writer;  // commit_interval, commit_max_events, queue_capacity
  // capacity_bytes (storage.journal_bytes); the daemon sets the rest from `storage`.
  storage::IngressJournalOptions journal;
  // The local broker: connection, subscriptions (one per route, in route order), max_event_bytes.
  connectors::MqttSourceOptions mqtt;
  std::vector<UpstreamConfig> upstreams;  // at least one, in configuration order
  MetricsConfig metrics;
  std::vector<RouteConfig> routes;  // at least one
  // Non-empty when the file is written in the old form ([kafka] and route.kafka_topic): the
  // equivalent new-form TOML, to replace the file's [kafka] tables and [[route]] blocks with.
  // Values of librdkafka properties that hold secrets are not shown in it.
  std::string legacy_rewrite;
  // Dotted name of each *_file key that named a secret ("mqtt.password_file",
  // "upstream.central.sasl_password_file") -> the secret read from it, so that a reload can tell
  // that a secret changed behind an unchanged file name.
  std::map<std::string, std::string> secret_files;
};

// Parses and validates TOML text. On error the Status message names the key (dotted path, e.g.
// "storage.max_bytes", "upstream.cloud.tls.ca_file" or "route[2].to.cloud"), the problem and,
// where it helps, the line; it never shows a secret's value. `origin` (a file name) prefixes
// messages. *out is left untouched on error.
Status ParseConfig(const std::string& toml_text, const std::string& origin, Config* out,
                   const ConfigEnvironment& env = {});

// Reads the file (ReadConfigText) and calls ParseConfig. A missing or unreadable file is an error
// naming the path.
Status LoadConfigFile(const std::string& path, Config* out, const ConfigEnvironment& env = {});

// Parses `toml_text` as ParseConfig does and appends to *keys the dotted name of every key the
// parser asked for, present in the text or not ("gateway.id", "upstream.central.tls.ca_file",
// "route[1].qos"): the schema as the parser states it, which the tests hold docs/configuration.md
// to. The parse stops at the first error, so only a valid text lists every table.
Status ListConfigKeys(const std::string& toml_text, std::vector<std::string>* keys,
                      const ConfigEnvironment& env = {});

// The upstream named `name`, or null.
const UpstreamConfig* FindUpstream(const Config& config, std::string_view name);

// The configuration spelling, "kafka", "mqtt", "kinesis" or "rabbitmq" (storage::ToString spells
// overflow and sync).
const char* ToString(UpstreamKind k);

}  // namespace sluice::gateway
