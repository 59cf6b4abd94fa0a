#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "connectors/kafka_sink.h"
#include "connectors/mqtt_sink.h"

namespace sluice::gateway {

// The daemon's configuration, parsed from TOML. Every key, its default and its meaning are in
// docs/configuration.md; keep the two in step. Unknown keys are errors.

enum class OverflowPolicy { kDropOldest, kRejectNew };
enum class SyncMode { kNormal, kFull };

struct GatewayConfig {
  std::string id;                  // [gateway] id; default: the host name
  std::string log_level = "info";  // trace|debug|info|warn|error|critical|off
  // Hard bound on shutdown: parts that hang longer are abandoned and sluice exits 1.
  uint32_t stop_timeout_s = 30;
};

struct StorageConfig {
  std::string path = "/var/lib/sluice/events.db";
  uint64_t max_bytes = 1ull << 30;  // accepts an integer or a string such as "512MiB"
  OverflowPolicy overflow = OverflowPolicy::kRejectNew;
  SyncMode sync = SyncMode::kNormal;
  uint32_t commit_interval_ms = 10;   // longest a QoS 0 event waits for its group commit
  uint32_t commit_max_events = 2000;  // a group commit holds at most this many events
  uint64_t max_event_bytes = 256 * 1024;
};

struct TlsConfig {
  bool enabled = false;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool verify = true;
};

enum class MqttProtocolVersion { kV5, kV311 };
enum class RetainedPolicy { kIngest, kSkip };

struct MqttConfig {
  std::string url = "tcp://127.0.0.1:1883";
  // [mqtt] protocol = "3.1.1" | "5"; why 3.1.1 is the default: docs/ARCHITECTURE.md, "Retained
  // messages and the SUBACK".
  MqttProtocolVersion protocol = MqttProtocolVersion::kV311;
  std::string client_id;  // default: "sluice-" + gateway id
  std::string username;
  std::string password;  // or password_file (exactly one may be set)
  std::string password_file;
  uint32_t keepalive_s = 30;
  uint32_t reconnect_min_ms = 500;
  uint32_t reconnect_max_ms = 30000;
  TlsConfig tls;
};

struct KafkaConfig {
  std::string brokers = "127.0.0.1:9092";
  std::string compression = "lz4";  // none|gzip|snappy|lz4|zstd
  uint32_t linger_ms = 5;
  uint32_t batch_bytes = 1000000;
  uint32_t max_in_flight_events = 50000;  // events handed to librdkafka and not yet confirmed
  uint32_t retry_backoff_ms = 250;
  uint32_t reconnect_max_ms = 10000;
  // Passed to librdkafka as-is (e.g. "security.protocol", "sasl.*"); keys that sluice sets for its
  // guarantees (enable.idempotence, acks, message.timeout.ms, ...) are refused here.
  std::map<std::string, std::string> properties;
  // Read into properties["sasl.password"], so the secret can live in a credential file.
  std::string sasl_password_file;
};

// The HTTP endpoint for /metrics, /healthz and /readyz (docs/operations.md).
struct MetricsConfig {
  bool enabled = false;
  std::string listen = "127.0.0.1:9464";  // HOST:PORT as written; [::1]:9464 for IPv6
  std::string address = "127.0.0.1";      // host part of `listen`, brackets removed
  uint16_t port = 9464;                   // port part of `listen`; 0: any free port
};

enum class UpstreamKind { kKafka, kMqtt };

// One [upstream.NAME] block.
struct UpstreamConfig {
  std::string name;
  UpstreamKind kind = UpstreamKind::kKafka;
  connectors::KafkaSinkOptions kafka;  // kKafka
  connectors::MqttSinkOptions mqtt;    // kMqtt
};

// A route's target on one upstream: a Kafka topic or an MQTT topic template.
struct RouteTarget {
  std::string upstream;
  std::string target;
};

// One MQTT topic filter and where its events go.
struct RouteConfig {
  std::string mqtt_filter;  // [[route]] mqtt = "devices/+/telemetry"
  std::string kafka_topic;  // [[route]] kafka_topic = "telemetry"
  std::string key_pattern;  // [[route]] key = "devices/{device}/#"; empty: whole MQTT topic
  int qos = 1;              // [[route]] qos = 0|1|2
  // [[route]] retained = "ingest" | "skip": whether retained messages the broker sends for a new
  // subscription are logged. A resubscription never logs them again.
  RetainedPolicy retained = RetainedPolicy::kIngest;
  bool forward_retain = false;
  std::vector<RouteTarget> targets;
};

struct Config {
  GatewayConfig gateway;
  StorageConfig storage;
  MqttConfig mqtt;
  KafkaConfig kafka;
  MetricsConfig metrics;
  std::vector<RouteConfig> routes;  // at least one
};

// What a configuration may refer to outside itself.
struct ConfigEnvironment {
  // systemd's $CREDENTIALS_DIRECTORY (LoadCredential=); empty when unset. File keys and
  // kafka.properties values may begin with "${CREDENTIALS_DIRECTORY}/".
  std::string credentials_directory;
  static ConfigEnvironment FromProcess();  // reads the process environment
};

// Parses and validates TOML text. On error the Status message names the key (dotted path, e.g.
// "storage.max_bytes" or "route[2].kafka_topic"), the problem and, where it helps, the line.
// `origin` (a file name) prefixes messages.
Status ParseConfig(const std::string& toml_text, const std::string& origin, Config* out,
                   const ConfigEnvironment& env = {});

// Reads the file and calls ParseConfig. A missing or unreadable file is an error naming the path.
Status LoadConfigFile(const std::string& path, Config* out, const ConfigEnvironment& env = {});

// A configuration file is a few KiB; anything this large is the wrong file.
inline constexpr size_t kMaxConfigFileBytes = 1 << 20;

// The one reader for the configuration file and the secret files it names, at start (run,
// check-config, status) and on SIGHUP alike. It reads at most `max_bytes`, so that a path naming
// /dev/zero or a huge file by mistake gives an error promptly instead of exhausting memory. The
// error names the path, never the contents.
Status ReadCappedFile(const std::string& path, size_t max_bytes, std::string* out);

// ReadCappedFile with kMaxConfigFileBytes; errors begin with "configuration file: ".
Status ReadConfigText(const std::string& path, std::string* out);

const char* ToString(OverflowPolicy p);
const char* ToString(SyncMode m);

}  // namespace sluice::gateway
