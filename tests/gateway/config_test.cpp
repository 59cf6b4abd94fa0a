// SPDX-License-Identifier: Apache-2.0

#include "gateway/config.h"

#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <set>
#include <vector>

#include "connectors/kafka_conf.h"
#include "connectors/kafka_sink.h"

namespace sluice::gateway {

namespace {

// Every valid document needs a route; tests that are about something else append this one.
constexpr const char* kRoute = R"(
[[route]]
mqtt = "devices/+/telemetry"
kafka_topic = "telemetry"
)";

Status Parse(const std::string& text, Config* config) {
  return ParseConfig(text, "test.toml", config);
}

// The error message for a document expected to be invalid; fails the test if it parses.
std::string ErrorFor(const std::string& text) {
  Config config;
  Status s = Parse(text, &config);
  CHECK_FALSE(s.ok());
  CHECK(s.code() == Status::Code::kInvalidArgument);
  return s.message();
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A file under /tmp that is deleted when the test ends.
class TempFile {
 public:
  explicit TempFile(const std::string& contents) {
    char name[] = "/tmp/sluice_config_test_XXXXXX";
    int fd = mkstemp(name);
    REQUIRE(fd >= 0);
    path_ = name;
    REQUIRE(write(fd, contents.data(), contents.size()) == static_cast<ssize_t>(contents.size()));
    close(fd);
  }
  ~TempFile() { std::remove(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string HostName() {
  char host[HOST_NAME_MAX + 1] = {};
  REQUIRE(gethostname(host, sizeof(host) - 1) == 0);
  return host;
}

TEST_CASE("ParseConfig reads every key of a complete configuration") {
  TempFile ca("not really a certificate\n");
  const std::string text = R"(
[gateway]
id = "plant-3"
log_level = "debug"

[storage]
path = "/data/sluice.db"
max_bytes = "512MiB"
overflow = "drop-oldest"
sync = "full"
commit_interval_ms = 20
commit_after_events = 50
commit_max_events = 500
journal_bytes = "1MiB"
max_event_bytes = 65536

[mqtt]
url = "mqtts://broker.example:8883"
client_id = "gw-plant-3"
username = "sluice"
password = "s3cret"
keepalive_s = 60
reconnect_min_ms = 100
reconnect_max_ms = 5000

[mqtt.tls]
enabled = true
ca_file = "/etc/ssl/ca.pem"
cert_file = "/etc/sluice/client.crt"
key_file = "/etc/sluice/client.key"
verify = false

[kafka]
brokers = "k1:9092,k2:9092"
compression = "zstd"
linger_ms = 50
batch_bytes = 262144
max_in_flight_events = 1000
retry_backoff_ms = 100
reconnect_max_ms = 2000

[kafka.properties]
"security.protocol" = "SASL_SSL"
sasl.mechanisms = "PLAIN"
"socket.keepalive.enable" = true
"queue.buffering.max.kbytes" = 4096

[[route]]
mqtt = "devices/+/telemetry"
kafka_topic = "telemetry"
key = "devices/{device}/#"
qos = 0

[[route]]
mqtt = "$SYS/broker/#"
kafka_topic = "broker.stats"
qos = 2
)";
  Config c;
  Status s = Parse(text, &c);
  REQUIRE_MESSAGE(s.ok(), s.ToString());

  CHECK(c.gateway.id == "plant-3");
  CHECK(c.gateway.log_level == "debug");

  CHECK(c.storage.path == "/data/sluice.db");
  CHECK(c.storage.max_bytes == 512ull * 1024 * 1024);
  CHECK(c.storage.overflow == storage::Overflow::kDropOldest);
  CHECK(c.storage.sync == storage::Sync::kFull);
  CHECK(c.writer.commit_interval == std::chrono::milliseconds(20));
  CHECK(c.writer.commit_after_events == 50);
  CHECK(c.writer.commit_max_events == 500);
  CHECK(c.writer.queue_capacity == 5000);
  CHECK(c.journal.capacity_bytes == 1024 * 1024);
  CHECK(c.mqtt.max_event_bytes == 65536);

  CHECK(c.mqtt.connection.url == "mqtts://broker.example:8883");
  CHECK(c.mqtt.connection.client_id == "gw-plant-3");
  CHECK(c.mqtt.connection.username == "sluice");
  CHECK(c.mqtt.connection.password == "s3cret");
  CHECK(c.secret_files.empty());
  CHECK(c.mqtt.connection.keepalive == std::chrono::seconds(60));
  CHECK(c.mqtt.connection.reconnect_min == std::chrono::milliseconds(100));
  CHECK(c.mqtt.connection.reconnect_max == std::chrono::milliseconds(5000));
  CHECK(c.mqtt.connection.tls);
  CHECK(c.mqtt.connection.ca_file == "/etc/ssl/ca.pem");
  CHECK(c.mqtt.connection.cert_file == "/etc/sluice/client.crt");
  CHECK(c.mqtt.connection.key_file == "/etc/sluice/client.key");
  CHECK_FALSE(c.mqtt.connection.tls_verify);

  REQUIRE(c.upstreams.size() == 1);
  const connectors::KafkaSinkOptions& kafka = c.upstreams[0].kafka;
  CHECK(c.upstreams[0].name == "kafka");
  CHECK(c.upstreams[0].kind == UpstreamKind::kKafka);
  CHECK(c.storage.cursors == std::vector<std::string>{"kafka"});
  CHECK(kafka.gateway_id == "plant-3");
  CHECK(kafka.brokers == "k1:9092,k2:9092");
  CHECK(kafka.compression == "zstd");
  CHECK(kafka.linger_ms == 50);
  CHECK(kafka.batch_bytes == 262144);
  CHECK(kafka.max_in_flight == 1000);
  CHECK(kafka.retry_backoff_ms == 100);
  CHECK(kafka.reconnect_max_ms == 2000);
  CHECK(kafka.properties.size() == 4);
  CHECK(kafka.properties.at("security.protocol") == "SASL_SSL");
  // An unquoted dotted key is a nested table in TOML; it still names one librdkafka property.
  CHECK(kafka.properties.at("sasl.mechanisms") == "PLAIN");
  CHECK(kafka.properties.at("socket.keepalive.enable") == "true");
  CHECK(kafka.properties.at("queue.buffering.max.kbytes") == "4096");

  REQUIRE(c.routes.size() == 2);
  CHECK(c.routes[0].mqtt_filter == "devices/+/telemetry");
  CHECK(c.routes[0].targets == std::vector<RouteTarget>{{"kafka", "telemetry"}});
  CHECK(c.routes[0].key_pattern == "devices/{device}/#");
  CHECK(c.routes[0].qos == 0);
  CHECK(c.routes[1].mqtt_filter == "$SYS/broker/#");
  CHECK(c.routes[1].targets == std::vector<RouteTarget>{{"kafka", "broker.stats"}});
  CHECK(c.routes[1].key_pattern.empty());
  CHECK(c.routes[1].qos == 2);
  // One subscription per route; QoS 2 is subscribed as QoS 1 (docs/configuration.md).
  REQUIRE(c.mqtt.subscriptions.size() == 2);
  CHECK(c.mqtt.subscriptions[0].filter == "devices/+/telemetry");
  CHECK(c.mqtt.subscriptions[0].qos == 0);
  CHECK(c.mqtt.subscriptions[1].filter == "$SYS/broker/#");
  CHECK(c.mqtt.subscriptions[1].qos == 1);
  CHECK(c.mqtt.subscriptions[1].ingest_retained);
}

TEST_CASE("ParseConfig fills in the documented defaults for a minimal configuration") {
  Config c;
  Status s = Parse(kRoute, &c);
  REQUIRE_MESSAGE(s.ok(), s.ToString());

  CHECK(c.gateway.id == HostName());
  CHECK(c.gateway.log_level == "info");
  CHECK(c.storage.path == "/var/lib/sluice/events.db");
  CHECK(c.storage.max_bytes == 1ull << 30);
  CHECK(c.storage.overflow == storage::Overflow::kRejectNew);
  CHECK(c.storage.sync == storage::Sync::kNormal);
  CHECK(c.writer.commit_interval == std::chrono::milliseconds(100));
  CHECK(c.writer.commit_after_events == 100);
  CHECK(c.writer.commit_max_events == 2000);
  CHECK(c.journal.capacity_bytes == 4 * 1024 * 1024);
  CHECK(c.writer.queue_capacity == 20000);
  CHECK(c.storage.retain_bytes == 0);
  CHECK(c.storage.retain_age == std::chrono::seconds(0));
  CHECK(c.mqtt.max_event_bytes == 256 * 1024);
  CHECK(c.mqtt.connection.url == "tcp://127.0.0.1:1883");
  CHECK(c.mqtt.connection.protocol == connectors::MqttProtocol::kV311);
  CHECK(c.mqtt.connection.client_id == "sluice-" + HostName());
  CHECK(c.mqtt.connection.username.empty());
  CHECK(c.mqtt.connection.password.empty());
  CHECK(c.mqtt.connection.keepalive == std::chrono::seconds(30));
  CHECK(c.mqtt.connection.reconnect_min == std::chrono::milliseconds(500));
  CHECK(c.mqtt.connection.reconnect_max == std::chrono::milliseconds(30000));
  CHECK_FALSE(c.mqtt.connection.tls);
  CHECK(c.mqtt.connection.tls_verify);
  REQUIRE(c.upstreams.size() == 1);
  const connectors::KafkaSinkOptions& kafka = c.upstreams[0].kafka;
  CHECK(kafka.brokers == "127.0.0.1:9092");
  CHECK(kafka.compression == "lz4");
  CHECK(kafka.linger_ms == 5);
  CHECK(kafka.batch_bytes == 1000000);
  CHECK(kafka.max_in_flight == 10000);
  CHECK(kafka.retry_backoff_ms == 250);
  CHECK(kafka.reconnect_max_ms == 10000);
  CHECK(kafka.gap_topic == "sluice.gaps");
  CHECK(kafka.properties.empty());
  REQUIRE(c.routes.size() == 1);
  CHECK(c.routes[0].key_pattern.empty());
  CHECK(c.routes[0].qos == 1);
}

TEST_CASE("ParseConfig derives the MQTT client id from an explicit gateway id") {
  Config c;
  REQUIRE(Parse(std::string("[gateway]\nid = \"edge-7\"\n") + kRoute, &c).ok());
  CHECK(c.mqtt.connection.client_id == "sluice-edge-7");
}

TEST_CASE("ParseConfig reports a TOML syntax error with its line and column") {
  const std::string msg = ErrorFor("[storage]\npath = \"/x\"\nmax_bytes = = 5\n");
  CHECK(Contains(msg, "test.toml:3:"));
  CHECK(Contains(msg, "syntax error"));
}

TEST_CASE("ParseConfig without an origin still gives the line of a syntax error") {
  Config c;
  Status s = ParseConfig("\n\n[unterminated\n", "", &c);
  REQUIRE_FALSE(s.ok());
  CHECK(Contains(s.message(), "line 3"));
}

TEST_CASE("ParseConfig names the unknown key and suggests the closest known one") {
  SUBCASE("nested in a section") {
    const std::string msg = ErrorFor(std::string("[storage]\nmax_byte = 5\n") + kRoute);
    CHECK(Contains(msg, "unknown key 'storage.max_byte'"));
    CHECK(Contains(msg, "did you mean 'storage.max_bytes'"));
    CHECK(Contains(msg, "test.toml:2:1"));
  }
  SUBCASE("a misspelt section") {
    const std::string msg = ErrorFor(std::string("[storge]\npath = \"/x\"\n") + kRoute);
    CHECK(Contains(msg, "unknown key 'storge'"));
    CHECK(Contains(msg, "did you mean 'storage'"));
  }
  SUBCASE("two levels deep") {
    const std::string msg = ErrorFor(std::string("[mqtt.tls]\nverfy = true\n") + kRoute);
    CHECK(Contains(msg, "unknown key 'mqtt.tls.verfy'"));
    CHECK(Contains(msg, "did you mean 'mqtt.tls.verify'"));
  }
  SUBCASE("in a route, by its 1-based index") {
    const std::string msg = ErrorFor(std::string(kRoute) +
                                     "[[route]]\nmqtt = \"a/#\"\nkafka_topic = \"a\"\ntopic = 1\n");
    CHECK(Contains(msg, "unknown key 'route[2].topic'"));
    CHECK(Contains(msg, "did you mean 'route[2].kafka_topic'"));
  }
  SUBCASE("without a suggestion when nothing is close") {
    const std::string msg = ErrorFor(std::string("[kafka]\nzzzzzzzzzzzz = 1\n") + kRoute);
    CHECK(Contains(msg, "unknown key 'kafka.zzzzzzzzzzzz'"));
    CHECK_FALSE(Contains(msg, "did you mean"));
  }
}

TEST_CASE("ParseConfig names the key, the expected type and what it found for a wrong type") {
  SUBCASE("string for an integer") {
    const std::string msg =
        ErrorFor(std::string("[storage]\ncommit_interval_ms = \"10\"\n") + kRoute);
    CHECK(Contains(msg, "storage.commit_interval_ms"));
    CHECK(Contains(msg, "expected an integer"));
    CHECK(Contains(msg, "found a string ('10')"));
  }
  SUBCASE("integer for a boolean") {
    const std::string msg = ErrorFor(std::string("[mqtt.tls]\nverify = 1\n") + kRoute);
    CHECK(Contains(msg, "mqtt.tls.verify"));
    CHECK(Contains(msg, "expected a boolean"));
    CHECK(Contains(msg, "found an integer (1)"));
  }
  SUBCASE("floating-point for a size") {
    const std::string msg = ErrorFor(std::string("[storage]\nmax_bytes = 1.5\n") + kRoute);
    CHECK(Contains(msg, "storage.max_bytes"));
    CHECK(Contains(msg, "found a floating-point number"));
  }
  SUBCASE("value for a section") {
    const std::string msg = ErrorFor(std::string("mqtt = \"tcp://x\"\n") + kRoute);
    CHECK(Contains(msg, "mqtt: expected a table, found a string"));
  }
  SUBCASE("integer for a string") {
    const std::string msg = ErrorFor(std::string(kRoute) + "key = 5\n");
    CHECK(Contains(msg, "route[1].key: expected a string, found an integer (5)"));
  }
}

TEST_CASE("ParseConfig names the key and the allowed range for an out-of-range value") {
  SUBCASE("qos") {
    const std::string msg = ErrorFor(std::string(kRoute) + "qos = 3\n");
    CHECK(Contains(msg, "route[1].qos"));
    CHECK(Contains(msg, "0..2"));
  }
  SUBCASE("zero commit interval") {
    const std::string msg = ErrorFor(std::string("[storage]\ncommit_interval_ms = 0\n") + kRoute);
    CHECK(Contains(msg, "storage.commit_interval_ms: 0 is out of range"));
  }
  SUBCASE("negative for an unsigned key") {
    const std::string msg = ErrorFor(std::string("[kafka]\nlinger_ms = -1\n") + kRoute);
    CHECK(Contains(msg, "kafka.linger_ms: -1 is out of range"));
  }
  SUBCASE("keepalive past MQTT's 16 bits") {
    const std::string msg = ErrorFor(std::string("[mqtt]\nkeepalive_s = 65536\n") + kRoute);
    CHECK(Contains(msg, "mqtt.keepalive_s"));
    CHECK(Contains(msg, "0..65535"));
  }
  SUBCASE("zero reconnect delay") {
    const std::string msg = ErrorFor(std::string("[mqtt]\nreconnect_min_ms = 0\n") + kRoute);
    CHECK(Contains(msg, "mqtt.reconnect_min_ms"));
  }
  SUBCASE("reconnect minimum above maximum") {
    const std::string msg = ErrorFor(
        std::string("[mqtt]\nreconnect_min_ms = 5000\nreconnect_max_ms = 1000\n") + kRoute);
    CHECK(Contains(msg, "mqtt.reconnect_min_ms"));
    CHECK(Contains(msg, "must not exceed mqtt.reconnect_max_ms (1000)"));
  }
  SUBCASE("reconnect maximum below the default minimum") {
    const std::string msg = ErrorFor(std::string("[mqtt]\nreconnect_max_ms = 100\n") + kRoute);
    CHECK(Contains(msg, "mqtt.reconnect_max_ms"));
  }
}

TEST_CASE("ParseConfig rejects values outside each enumeration and lists the allowed ones") {
  SUBCASE("overflow") {
    const std::string msg =
        ErrorFor(std::string("[storage]\noverflow = \"drop-newest\"\n") + kRoute);
    CHECK(Contains(msg, "storage.overflow: 'drop-newest' is not one of drop-oldest|reject-new"));
  }
  SUBCASE("sync") {
    const std::string msg = ErrorFor(std::string("[storage]\nsync = \"FULL\"\n") + kRoute);
    CHECK(Contains(msg, "storage.sync"));
    CHECK(Contains(msg, "normal|full"));
  }
  SUBCASE("log level") {
    const std::string msg = ErrorFor(std::string("[gateway]\nlog_level = \"warning\"\n") + kRoute);
    CHECK(Contains(msg, "gateway.log_level"));
    CHECK(Contains(msg, "did you mean 'warn'"));
  }
  SUBCASE("compression") {
    const std::string msg = ErrorFor(std::string("[kafka]\ncompression = \"brotli\"\n") + kRoute);
    CHECK(Contains(msg, "kafka.compression"));
    CHECK(Contains(msg, "none|gzip|snappy|lz4|zstd"));
  }
}

TEST_CASE("ParseConfig accepts sizes as integers or strings with units") {
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  const Case cases[] = {
      {"1048576", 1048576},     {"\"512MiB\"", 512ull << 20}, {"\"2GB\"", 2000000000ull},
      {"\"1GiB\"", 1ull << 30}, {"\"1500 KB\"", 1500000},     {"\"4096KiB\"", 4ull << 20},
      {"\"3mb\"", 3000000},     {"\"2097152B\"", 2097152},    {"\"2000000\"", 2000000},
  };
  for (const Case& tc : cases) {
    CAPTURE(tc.text);
    Config c;
    Status s = Parse(std::string("[storage]\nmax_bytes = ") + tc.text + "\n" + kRoute, &c);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    CHECK(c.storage.max_bytes == tc.bytes);
  }
  Config c;
  REQUIRE(Parse(std::string("[storage]\nmax_event_bytes = \"64KiB\"\n") + kRoute, &c).ok());
  CHECK(c.mqtt.max_event_bytes == 65536);
}

TEST_CASE("ParseConfig rejects malformed and out-of-range sizes") {
  for (const char* bad : {"\"lots\"", "\"12XB\"", "\"\"", "\"MiB\"", "\"1.5GiB\"", "\"-5MiB\"",
                          "\"99999999999999999999\"", "\"99999999999GiB\""}) {
    CAPTURE(bad);
    const std::string msg = ErrorFor(std::string("[storage]\nmax_bytes = ") + bad + "\n" + kRoute);
    CHECK(Contains(msg, "storage.max_bytes"));
    CHECK(Contains(msg, "is not a size"));
  }
  SUBCASE("a log below 1 MiB") {
    const std::string msg = ErrorFor(std::string("[storage]\nmax_bytes = 1000\n") + kRoute);
    CHECK(Contains(msg, "storage.max_bytes: 1000 bytes is out of range"));
    CHECK(Contains(msg, "at least 1 MiB"));
  }
  SUBCASE("a negative integer") {
    const std::string msg = ErrorFor(std::string("[storage]\nmax_bytes = -1\n") + kRoute);
    CHECK(Contains(msg, "storage.max_bytes: -1 is negative"));
  }
  SUBCASE("an event larger than 16 MiB") {
    const std::string msg = ErrorFor(
        std::string("[storage]\nmax_bytes = \"1GiB\"\nmax_event_bytes = \"17MiB\"\n") + kRoute);
    CHECK(Contains(msg, "storage.max_event_bytes"));
    CHECK(Contains(msg, "between 1 byte and 16 MiB"));
  }
  SUBCASE("an empty event limit") {
    const std::string msg = ErrorFor(std::string("[storage]\nmax_event_bytes = 0\n") + kRoute);
    CHECK(Contains(msg, "storage.max_event_bytes"));
  }
  SUBCASE("an ingress journal below 64 KiB or above 256 MiB") {
    for (const char* bad : {"\"32KiB\"", "\"257MiB\""}) {
      CAPTURE(bad);
      const std::string msg =
          ErrorFor(std::string("[storage]\njournal_bytes = ") + bad + "\n" + kRoute);
      CHECK(Contains(msg, "storage.journal_bytes"));
      CHECK(Contains(msg, "out of range"));
    }
  }
  SUBCASE("an event limit not below the log size") {
    const std::string msg = ErrorFor(
        std::string("[storage]\nmax_bytes = \"2MiB\"\nmax_event_bytes = \"2MiB\"\n") + kRoute);
    CHECK(Contains(msg, "storage.max_event_bytes: 2 MiB must be less than storage.max_bytes"));
  }
}

TEST_CASE("ParseConfig requires at least one route") {
  CHECK(Contains(ErrorFor("[gateway]\nid = \"x\"\n"), "no [[route]] is configured"));
  CHECK(Contains(ErrorFor("route = []\n"), "no [[route]] is configured"));
  CHECK(Contains(ErrorFor("[route]\nmqtt = \"a\"\nkafka_topic = \"a\"\n"),
                 "route: expected an array of tables ([[route]]), found a table"));
}

TEST_CASE("ParseConfig requires mqtt and kafka_topic in every route") {
  CHECK(Contains(ErrorFor("[[route]]\nkafka_topic = \"t\"\n"), "route[1].mqtt is required"));
  CHECK(Contains(ErrorFor(std::string(kRoute) + "[[route]]\nmqtt = \"x/#\"\n"),
                 "route[2].kafka_topic is required"));
}

TEST_CASE("ParseConfig rejects an invalid MQTT topic filter in a route") {
  for (const char* bad : {"a/#/b", "a/b#", "a+/b", ""}) {
    CAPTURE(bad);
    const std::string msg =
        ErrorFor(std::string("[[route]]\nmqtt = \"") + bad + "\"\nkafka_topic = \"t\"\n");
    CHECK(Contains(msg, "route[1].mqtt"));
    CHECK(Contains(msg, "invalid topic filter"));
  }
}

TEST_CASE("ParseConfig rejects an invalid Kafka topic name in a route") {
  for (const char* bad : {"", ".", "..", "has space", "slash/topic", "ümlaut"}) {
    CAPTURE(bad);
    const std::string msg =
        ErrorFor(std::string("[[route]]\nmqtt = \"a/#\"\nkafka_topic = \"") + bad + "\"\n");
    CHECK(Contains(msg, "route[1].kafka_topic"));
  }
  const std::string long_name(250, 'a');
  CHECK(Contains(ErrorFor("[[route]]\nmqtt = \"a/#\"\nkafka_topic = \"" + long_name + "\"\n"),
                 "at most 249"));

  Config c;
  const std::string longest(249, 'b');
  CHECK(Parse("[[route]]\nmqtt = \"a/#\"\nkafka_topic = \"" + longest + "\"\n", &c).ok());
  CHECK(Parse("[[route]]\nmqtt = \"a/#\"\nkafka_topic = \"A.b_c-9\"\n", &c).ok());
}

TEST_CASE("ParseConfig rejects an invalid key pattern in a route") {
  for (const char* bad :
       {"devices/{a}/{b}", "devices/{}/x", "devices/x{id}/y", "#/devices", "devices/{bad-name}"}) {
    CAPTURE(bad);
    const std::string msg = ErrorFor(std::string(kRoute) + "key = \"" + bad + "\"\n");
    CHECK(Contains(msg, "route[1].key"));
    CHECK(Contains(msg, "invalid key pattern"));
  }
}

// Found by tests/fuzz/config_fuzzer: librdkafka reads property names as C strings, so a NUL in the
// name would have cut "delivery.report.only.error\u0000" down to a refused key.
TEST_CASE("ParseConfig refuses a kafka.properties name containing a NUL character") {
  for (const char* key :
       {R"("delivery.report.only.error\u0000")", R"("acks\u0000x")", R"(sasl."a\u0000b")"}) {
    CAPTURE(key);
    const std::string msg =
        ErrorFor(std::string("[kafka.properties]\n") + key + " = true\n" + kRoute);
    CHECK(Contains(msg, "a property name must not contain a NUL character"));
    CHECK(msg.find('\0') == std::string::npos);
  }
}

// Inputs on which toml++ 3.3.0, compiled with UBSan, reaches TOML_UNREACHABLE (upstream issue
// marzer/tomlplusplus#295; the fuzzer found the first one). Debian's build of the library, which
// sluice links, must turn them into a syntax error with a position.
TEST_CASE("ParseConfig reports a syntax error for a non-ASCII character where TOML expects none") {
  CHECK(Contains(ErrorFor("a = 1.\xcb\x92\n"), "test.toml:1:7: syntax error"));
  CHECK(Contains(ErrorFor("\xcc\xaa"), "test.toml:1:1: syntax error"));
}

TEST_CASE("ParseConfig refuses kafka.properties that sluice controls and says why") {
  SUBCASE("acks") {
    const std::string msg = ErrorFor(std::string("[kafka.properties]\nacks = \"1\"\n") + kRoute);
    CHECK(Contains(msg, "kafka.properties 'acks' cannot be set here"));
    CHECK(Contains(msg, "acks=all"));
  }
  SUBCASE("an unquoted dotted key") {
    const std::string msg =
        ErrorFor(std::string("[kafka.properties]\nenable.idempotence = false\n") + kRoute);
    CHECK(Contains(msg, "'enable.idempotence' cannot be set here"));
    CHECK(Contains(msg, "idempotent"));
  }
  SUBCASE("an alias of a controlled key") {
    const std::string msg =
        ErrorFor(std::string("[kafka.properties]\n\"delivery.timeout.ms\" = 1000\n") + kRoute);
    CHECK(Contains(msg, "'delivery.timeout.ms' cannot be set here"));
  }
  SUBCASE("the broker list, which has its own key") {
    const std::string msg =
        ErrorFor(std::string("[kafka.properties]\n\"bootstrap.servers\" = \"k:9092\"\n") + kRoute);
    CHECK(Contains(msg, "set kafka.brokers instead"));
  }
  for (const char* key : {"enable.idempotence", "acks", "message.timeout.ms",
                          "max.in.flight.requests.per.connection", "retries", "bootstrap.servers",
                          "metadata.broker.list", "delivery.report.only.error", "dr_cb"}) {
    CAPTURE(key);
    const std::string msg =
        ErrorFor(std::string("[kafka.properties]\n\"") + key + "\" = \"x\"\n" + kRoute);
    CHECK(Contains(msg, std::string("'") + key + "' cannot be set here"));
  }
}

// A secret under a wrong name used to pass check-config and then be logged, at critical level and
// in systemd's STATUS=, by every restart of `run`.
constexpr const char* kSecret = "Hunter2-s3cr3t-Value";

TEST_CASE("ParseConfig refuses a misspelt librdkafka property, naming it and never its value") {
  const std::string msg = ErrorFor(std::string("[kafka.properties]\n\"sasl.pasword\" = \"") +
                                   kSecret + "\"\n" + kRoute);
  CHECK(Contains(msg, "test.toml:2:1: "));
  CHECK(Contains(msg, "kafka property 'sasl.pasword' is not a librdkafka property"));
  CHECK(Contains(msg, "did you mean 'sasl.password'?"));
  CHECK_FALSE(Contains(msg, kSecret));
}

TEST_CASE("ParseConfig refuses a value librdkafka refuses, naming the key and never the value") {
  // librdkafka's own text quotes each of these values (an enum, a flag list, a number out of
  // range), so it must not reach the message.
  for (const std::string& line : {std::string("\"security.protocol\" = \"") + kSecret + "\"",
                                  std::string("debug = \"broker,") + kSecret + "\"",
                                  std::string("\"socket.timeout.ms\" = \"") + kSecret + "\"",
                                  std::string("\"compression.level\" = 918273645")}) {
    CAPTURE(line);
    const std::string msg = ErrorFor("[kafka.properties]\n" + line + "\n" + kRoute);
    CHECK(Contains(msg, "test.toml:2:1: kafka property '"));
    CHECK(Contains(msg, "librdkafka refuses the value (not shown"));
    CHECK_FALSE(Contains(msg, kSecret));
    CHECK_FALSE(Contains(msg, "918273645"));
  }
}

TEST_CASE("ParseConfig never shows a secret's value in its other messages") {
  const std::string messages[] = {
      ErrorFor(std::string("[kafka.properties]\n\"sasl.password\" = [\"") + kSecret + "\"]\n" +
               kRoute),
      ErrorFor(std::string("[kafka.properties]\n\"sasl.password\" = \"${X}") + kSecret + "\"\n" +
               kRoute),
      ErrorFor(std::string("[kafka.properties]\n\"sasl.password\" = 1.918273645\n") + kRoute),
      ErrorFor(std::string("[mqtt]\nusername = \"u\"\npassword = 918273645\n") + kRoute),
      ErrorFor(std::string("[mqtt]\nusername = \"u\"\npassword = 9.18273645\n") + kRoute),
  };
  for (const std::string& msg : messages) {
    CAPTURE(msg);
    CHECK((Contains(msg, "sasl.password") || Contains(msg, "mqtt.password")));
    CHECK_FALSE(Contains(msg, kSecret));
    CHECK_FALSE(Contains(msg, "18273645"));
  }
}

TEST_CASE("ParseConfig reports a syntax error without echoing what it found") {
  // A password written without quotes: toml++ quotes the characters it saw.
  for (const char* value : {"tru_S3cr", "\"pw\\qS3cr\"", "12S3cr"}) {
    CAPTURE(value);
    const std::string msg =
        ErrorFor(std::string("[kafka.properties]\n\"sasl.password\" = ") + value + "\n" + kRoute);
    CHECK(Contains(msg, "test.toml:2:"));
    CHECK(Contains(msg, "syntax error: "));
    CHECK_FALSE(Contains(msg, "S3"));
    CHECK_FALSE(Contains(msg, "tru_"));
    CHECK_FALSE(Contains(msg, "\\q"));
  }
  // What toml++ expected stays.
  CHECK(Contains(ErrorFor("a b = 1\n"), "expected '='"));
}

TEST_CASE("ParseConfig accepts the librdkafka properties sluice leaves to the user") {
  Config c;
  Status s = Parse(std::string("[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n"
                               "\"sasl.mechanisms\" = \"SCRAM-SHA-512\"\n"
                               "\"sasl.username\" = \"u\"\n\"sasl.password\" = \"p\"\n"
                               "\"client.id\" = \"edge-7\"\n\"message.max.bytes\" = 2000000\n"
                               "\"sticky.partitioning.linger.ms\" = 0\n"
                               "\"topic.metadata.refresh.interval.ms\" = 60000\n") +
                       kRoute,
                   &c);
  CHECK_MESSAGE(s.ok(), s.ToString());
}

TEST_CASE("ParseConfig refuses settings that would break a key's partition or order") {
  // Topic-level properties reach librdkafka through the global configuration under their own
  // name or with a "topic." prefix; both are refused.
  for (const char* line :
       {"partitioner = \"random\"", "\"topic.partitioner\" = \"random\"", "\"topic.acks\" = \"1\"",
        "\"topic.request.required.acks\" = 0", "\"topic.message.timeout.ms\" = 5000",
        "\"queuing.strategy\" = \"lifo\"", "\"transactional.id\" = \"t\"",
        "\"queue.buffering.max.messages\" = 10", "\"log.connection.close\" = true",
        "\"compression.codec\" = \"gzip\"", "\"topic.compression.codec\" = \"gzip\"",
        "\"partitioner_cb\" = \"x\""}) {
    CAPTURE(line);
    const std::string msg = ErrorFor(std::string("[kafka.properties]\n") + line + "\n" + kRoute);
    CHECK((Contains(msg, "cannot be set here: ") || Contains(msg, "cannot take this value: ")));
  }
  // A partitioner that hashes the key keeps it in one partition; murmur2 agrees with Java
  // producers.
  for (const char* value : {"murmur2_random", "murmur2", "consistent", "fnv1a_random"}) {
    CAPTURE(value);
    Config c;
    const Status s =
        Parse(std::string("[kafka.properties]\npartitioner = \"") + value + "\"\n" + kRoute, &c);
    CHECK_MESSAGE(s.ok(), s.ToString());
  }
}

// Wiring of the one table (connectors/kafka_conf.h): what the sink sets is exactly what the
// configuration refuses, besides aliases and callbacks that are refused and never set.
TEST_CASE("Every librdkafka setting the sink sets is refused in the configuration, and back") {
  connectors::KafkaSinkOptions options;
  options.gateway_id = "g";
  connectors::KafkaSinkOptions exactly_once = options;
  exactly_once.delivery = connectors::KafkaDelivery::kExactlyOnce;
  // Each delivery mode sets keys of its own; the table's keys with a value are their union.
  connectors::KafkaSettings set = connectors::OwnedProducerSettings(options);
  std::set<std::string> set_keys;
  for (const auto& [key, value] : set) set_keys.insert(key);
  CHECK(set_keys.count("transactional.id") == 0);
  for (auto& [key, value] : connectors::OwnedProducerSettings(exactly_once)) {
    if (set_keys.insert(key).second) set.emplace_back(key, value);
  }
  for (const char* key :
       {"enable.idempotence", "acks", "message.timeout.ms", "queue.buffering.max.messages",
        "log.connection.close", "transactional.id", "transaction.timeout.ms"}) {
    CHECK(set_keys.count(key) == 1);
  }
  for (const auto& [key, value] : set) {
    CAPTURE(key);
    const std::string msg =
        ErrorFor("[kafka.properties]\n\"" + key + "\" = \"" + value + "\"\n" + kRoute);
    CHECK(Contains(msg, "'" + key + "' cannot be set here"));
  }
  for (const connectors::OwnedKafkaSetting& owned : connectors::OwnedKafkaSettings()) {
    const std::string key(owned.key);
    CAPTURE(key);
    CHECK(Contains(
        ErrorFor("[kafka.properties]\n\"" + key + "\" = \"1\"\n" + kRoute),
        "'" + key +
            (owned.allowed.empty() ? "' cannot be set here: " : "' cannot take this value: ") +
            std::string(owned.reason)));
    CHECK(set_keys.count(key) == (owned.value != nullptr ? 1u : 0u));
    // Every key is one librdkafka knows: a typo in the table would refuse nothing.
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    std::string err;
    CHECK(conf->set(key, "1", err) != RdKafka::Conf::CONF_UNKNOWN);
  }
  // And the producer's configuration carries each value, aliases resolved by librdkafka.
  std::unique_ptr<RdKafka::Conf> conf;
  REQUIRE(connectors::BuildKafkaConf({}, set, &conf).ok());
  std::string value;
  REQUIRE(conf->get("enable.idempotence", value) == RdKafka::Conf::CONF_OK);
  CHECK(value == "true");
  REQUIRE(conf->get("message.timeout.ms", value) == RdKafka::Conf::CONF_OK);
  CHECK(value == "0");
  REQUIRE(conf->get("queue.buffering.max.messages", value) == RdKafka::Conf::CONF_OK);
  CHECK(value == std::to_string(options.max_in_flight + 1000));
}

TEST_CASE("ParseConfig rejects a kafka property that is neither string, integer nor boolean") {
  const std::string msg =
      ErrorFor(std::string("[kafka.properties]\n\"socket.timeout.ms\" = 1.5\n") + kRoute);
  CHECK(Contains(msg, "'socket.timeout.ms': expected a string, integer or boolean"));
}

TEST_CASE("ParseConfig rejects password together with password_file") {
  TempFile secret("pw\n");
  const std::string msg =
      ErrorFor("[mqtt]\nusername = \"u\"\npassword = \"p\"\npassword_file = \"" + secret.path() +
               "\"\n" + kRoute);
  CHECK(Contains(msg, "mutually exclusive"));
}

TEST_CASE("ParseConfig names a missing password file and the system's reason") {
  const std::string msg = ErrorFor(
      std::string("[mqtt]\nusername = \"u\"\npassword_file = \"/nonexistent/sluice-pw\"\n") +
      kRoute);
  CHECK(Contains(msg, "mqtt.password_file"));
  CHECK(Contains(msg, "/nonexistent/sluice-pw"));
  CHECK(Contains(msg, "No such file or directory"));
}

TEST_CASE("ParseConfig refuses a password file that never ends instead of reading it all") {
  const std::string msg =
      ErrorFor(std::string("[mqtt]\nusername = \"u\"\npassword_file = \"/dev/zero\"\n") + kRoute);
  CHECK(Contains(msg, "mqtt.password_file"));
  CHECK(Contains(msg, "is larger than 65537 bytes"));
}

TEST_CASE("LoadConfigFile refuses a configuration file that never ends") {
  Config c;
  const Status s = LoadConfigFile("/dev/zero", &c);
  CHECK_FALSE(s.ok());
  CHECK(Contains(s.message(), "is larger than 1048576 bytes"));
}

TEST_CASE("ParseConfig reads the password file and strips exactly one trailing newline") {
  SUBCASE("one newline") {
    TempFile secret("hunter2\n");
    Config c;
    Status s =
        Parse("[mqtt]\nusername = \"u\"\npassword_file = \"" + secret.path() + "\"\n" + kRoute, &c);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    CHECK(c.mqtt.connection.password == "hunter2");
    CHECK(c.secret_files == std::map<std::string, std::string>{{"mqtt.password_file", "hunter2"}});
  }
  SUBCASE("two newlines keep the second") {
    TempFile secret("hunter2\n\n");
    Config c;
    REQUIRE(
        Parse("[mqtt]\nusername = \"u\"\npassword_file = \"" + secret.path() + "\"\n" + kRoute, &c)
            .ok());
    CHECK(c.mqtt.connection.password == "hunter2\n");
  }
  SUBCASE("no newline") {
    TempFile secret(" with spaces ");
    Config c;
    REQUIRE(
        Parse("[mqtt]\nusername = \"u\"\npassword_file = \"" + secret.path() + "\"\n" + kRoute, &c)
            .ok());
    CHECK(c.mqtt.connection.password == " with spaces ");
  }
}

TEST_CASE("ParseConfig requires a user name when a password is set") {
  const std::string msg = ErrorFor(std::string("[mqtt]\npassword = \"p\"\n") + kRoute);
  CHECK(Contains(msg, "mqtt.password"));
  CHECK(Contains(msg, "mqtt.username"));
}

TEST_CASE("ParseConfig rejects two routes with the same MQTT filter") {
  const std::string msg =
      ErrorFor(std::string(kRoute) +
               "[[route]]\nmqtt = \"other/#\"\nkafka_topic = \"o\"\n"
               "[[route]]\nmqtt = \"devices/+/telemetry\"\nkafka_topic = \"copy\"\n");
  CHECK(Contains(msg, "route[3].mqtt"));
  CHECK(Contains(msg, "already routed by route[1]"));
}

TEST_CASE("ParseConfig validates the gateway id") {
  CHECK(Contains(ErrorFor(std::string("[gateway]\nid = \"\"\n") + kRoute),
                 "gateway.id: '' must not be empty"));
  CHECK(Contains(ErrorFor(std::string("[gateway]\nid = \"two words\"\n") + kRoute),
                 "must not contain spaces"));
  CHECK(Contains(ErrorFor(std::string("[gateway]\nid = \"tab\\there\"\n") + kRoute), "printable"));
}

TEST_CASE("ParseConfig validates the MQTT client id length") {
  CHECK(Contains(ErrorFor(std::string("[mqtt]\nclient_id = \"\"\n") + kRoute),
                 "mqtt.client_id: must be 1..65535 bytes"));
  CHECK(Contains(ErrorFor("[mqtt]\nclient_id = \"" + std::string(65536, 'c') + "\"\n" + kRoute),
                 "mqtt.client_id"));
  Config c;
  CHECK(Parse("[mqtt]\nclient_id = \"" + std::string(65535, 'c') + "\"\n" + kRoute, &c).ok());
}

TEST_CASE("ParseConfig validates the MQTT URL scheme and its agreement with TLS") {
  CHECK(Contains(ErrorFor(std::string("[mqtt]\nurl = \"http://broker:1883\"\n") + kRoute),
                 "must start with tcp://, ssl://, mqtt://, mqtts://, ws:// or wss://"));
  CHECK(Contains(ErrorFor(std::string("[mqtt]\nurl = \"tcp://\"\n") + kRoute), "names no host"));
  CHECK(Contains(ErrorFor(std::string("[mqtt]\nurl = \"tcp://b:1883\"\n[mqtt.tls]\nenabled = "
                                      "true\n") +
                          kRoute),
                 "not a TLS URL"));
  CHECK(Contains(ErrorFor(std::string("[mqtt]\nurl = \"ssl://b:8883\"\n") + kRoute),
                 "is a TLS URL but mqtt.tls.enabled is false"));
  for (const char* url : {"tcp://b:1", "mqtt://b:1", "ws://b:80/mqtt"}) {
    CAPTURE(url);
    Config c;
    CHECK(Parse(std::string("[mqtt]\nurl = \"") + url + "\"\n" + kRoute, &c).ok());
  }
  for (const char* url : {"ssl://b:1", "mqtts://b:1", "wss://b:443/mqtt"}) {
    CAPTURE(url);
    Config c;
    CHECK(Parse(std::string("[mqtt]\nurl = \"") + url + "\"\n[mqtt.tls]\nenabled = true\n" + kRoute,
                &c)
              .ok());
  }
}

TEST_CASE("ParseConfig rejects a malformed Kafka broker list and names the entry") {
  for (const char* bad :
       {"kafka1:9092,", "http://kafka1:9092", "kafka1:", "kafka1:0", "kafka1:65536", "kafka1:90x2",
        ":9092", "kafka1/x:9092", "[::1", "k1:9092, ,k2:9092"}) {
    CAPTURE(bad);
    const std::string msg = ErrorFor(std::string("[kafka]\nbrokers = \"") + bad + "\"\n" + kRoute);
    CHECK(Contains(msg, "kafka.brokers"));
  }
  CHECK(Contains(ErrorFor(std::string("[kafka]\nbrokers = \"k1:9092,k2:99999\"\n") + kRoute),
                 "'k2:99999' has a port outside 1..65535"));
  for (const char* good :
       {"kafka1:9092", "kafka1", "k1:9092,k2:9093", "k1:9092, k2:9093", "SASL_SSL://k1:9093",
        "sasl_plaintext://k1:9092", "[::1]:9092", "10.0.0.1:9092"}) {
    CAPTURE(good);
    Config c;
    Status s = Parse(std::string("[kafka]\nbrokers = \"") + good + "\"\n" + kRoute, &c);
    CHECK_MESSAGE(s.ok(), s.ToString());
  }
}

TEST_CASE("ParseConfig rejects empty storage path and Kafka brokers") {
  CHECK(Contains(ErrorFor(std::string("[storage]\npath = \"\"\n") + kRoute),
                 "storage.path: must not be empty"));
  CHECK(Contains(ErrorFor(std::string("[kafka]\nbrokers = \"\"\n") + kRoute),
                 "kafka.brokers: must not be empty"));
}

TEST_CASE("ParseConfig rejects a string with an embedded NUL") {
  CHECK(Contains(ErrorFor(std::string("[storage]\npath = \"/a\\u0000b\"\n") + kRoute),
                 "storage.path: contains a NUL character"));
}

TEST_CASE("ParseConfig leaves the output untouched on error") {
  Config c;
  c.gateway.id = "sentinel";
  CHECK_FALSE(
      Parse(std::string("[gateway]\nid = \"new\"\n[storage]\nbogus = 1\n") + kRoute, &c).ok());
  CHECK(c.gateway.id == "sentinel");
  CHECK(c.routes.empty());
}

TEST_CASE("LoadConfigFile names a missing file and the system's reason") {
  Config c;
  Status s = LoadConfigFile("/nonexistent/sluice.toml", &c);
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == Status::Code::kIoError);
  CHECK(Contains(s.message(), "/nonexistent/sluice.toml"));
  CHECK(Contains(s.message(), "No such file or directory"));
}

TEST_CASE("LoadConfigFile prefixes errors with the file name") {
  TempFile file("[storage]\nmax_bytes = \"tiny\"\n");
  Config c;
  Status s = LoadConfigFile(file.path(), &c);
  REQUIRE_FALSE(s.ok());
  CHECK(Contains(s.message(), file.path() + ":2:"));
}

TEST_CASE("The example configuration file parses") {
  Config c;
  Status s = LoadConfigFile(SLUICE_SOURCE_DIR "/gateway/sluice.example.toml", &c);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  CHECK(c.routes.size() >= 1);
  CHECK(c.storage.overflow == storage::Overflow::kRejectNew);
  CHECK(c.storage.sync == storage::Sync::kNormal);
  CHECK(c.gateway.id == HostName());
  // Written in the new form, with the MQTT upstream commented out.
  CHECK(c.legacy_rewrite.empty());
  REQUIRE(c.upstreams.size() == 1);
  CHECK(c.upstreams[0].name == "central");
}

TEST_CASE("ParseConfig reads [metrics]: off by default, listen as HOST:PORT or [IPV6]:PORT") {
  Config c;
  REQUIRE(Parse(kRoute, &c).ok());
  CHECK_FALSE(c.metrics.enabled);
  CHECK(c.metrics.address == "127.0.0.1");
  CHECK(c.metrics.port == 9464);

  REQUIRE(Parse(std::string("[metrics]\nenabled = true\nlisten = \"0.0.0.0:9100\"\n") + kRoute, &c)
              .ok());
  CHECK(c.metrics.enabled);
  CHECK(c.metrics.listen == "0.0.0.0:9100");
  CHECK(c.metrics.address == "0.0.0.0");
  CHECK(c.metrics.port == 9100);

  REQUIRE(
      Parse(std::string("[metrics]\nenabled = true\nlisten = \"[::1]:0\"\n") + kRoute, &c).ok());
  CHECK(c.metrics.address == "::1");
  CHECK(c.metrics.port == 0);

  REQUIRE(Parse(std::string("[metrics]\nlisten = \"localhost:65535\"\n") + kRoute, &c).ok());
  CHECK(c.metrics.address == "localhost");
  CHECK(c.metrics.port == 65535);
}

TEST_CASE("ParseConfig names metrics.listen for a bad port or address") {
  for (const char* listen : {"127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:http", "127.0.0.1:"}) {
    CAPTURE(listen);
    const std::string e =
        ErrorFor(std::string("[metrics]\nlisten = \"") + listen + "\"\n" + kRoute);
    CHECK(Contains(e, "test.toml:2:"));
    CHECK(Contains(e, "metrics.listen"));
    CHECK(Contains(e, "0..65535"));
  }
  CHECK(Contains(ErrorFor(std::string("[metrics]\nlisten = \"9464\"\n") + kRoute),
                 "is not HOST:PORT"));
  CHECK(
      Contains(ErrorFor(std::string("[metrics]\nlisten = \":9464\"\n") + kRoute), "names no host"));
  CHECK(Contains(ErrorFor(std::string("[metrics]\nlisten = \"::1:9464\"\n") + kRoute),
                 "without brackets"));
  CHECK(Contains(ErrorFor(std::string("[metrics]\nlisten = \"\"\n") + kRoute),
                 "metrics.listen: must not be empty"));
  CHECK(Contains(ErrorFor(std::string("[metrics]\nenabled = \"yes\"\n") + kRoute),
                 "metrics.enabled: expected a boolean"));
}

TEST_CASE("ParseConfig rejects an unknown key in [metrics] with a suggestion") {
  const std::string e = ErrorFor(std::string("[metrics]\nport = 9464\n") + kRoute);
  CHECK(Contains(e, "unknown key 'metrics.port'"));
  const std::string e2 = ErrorFor(std::string("[metrics]\nenable = true\n") + kRoute);
  CHECK(Contains(e2, "unknown key 'metrics.enable' (did you mean 'metrics.enabled'?)"));
}

TEST_CASE(
    "Overflow policies, sync modes and upstream kinds print as their configuration spelling") {
  CHECK(std::string(ToString(storage::Overflow::kDropOldest)) == "drop-oldest");
  CHECK(std::string(ToString(storage::Overflow::kRejectNew)) == "reject-new");
  CHECK(std::string(ToString(storage::Sync::kNormal)) == "normal");
  CHECK(std::string(ToString(storage::Sync::kFull)) == "full");
  CHECK(std::string(ToString(UpstreamKind::kKafka)) == "kafka");
  CHECK(std::string(ToString(UpstreamKind::kMqtt)) == "mqtt");
}

}  // namespace
}  // namespace sluice::gateway
