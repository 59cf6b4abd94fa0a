// SPDX-License-Identifier: Apache-2.0

// [upstream.NAME] blocks, route.to, forward_retain, storage.retain_*, and the old form ([kafka],
// route.kafka_topic) with its rewrite (docs/configuration.md).
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "gateway/config.h"
#include "tests/test_util.h"

namespace sluice::gateway {
namespace {

using sluice::testing::TempDir;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr const char* kSecret = "Hunter2-s3cr3t-Value";

Status Parse(const std::string& text, Config* config, const ConfigEnvironment& env = {}) {
  return ParseConfig(text, "test.toml", config, env);
}

std::string ErrorFor(const std::string& text, const ConfigEnvironment& env = {}) {
  Config config;
  Status s = Parse(text, &config, env);
  CHECK_FALSE(s.ok());
  CHECK(s.code() == Status::Code::kInvalidArgument);
  return s.message();
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// Two upstreams and a route feeding both: tests that are about one key append to or replace it.
constexpr const char* kCentral = R"(
[upstream.central]
kind = "kafka"
)";
constexpr const char* kCloud = R"(
[upstream.cloud]
kind = "mqtt"
url = "tcp://cloud.example:1883"
)";
constexpr const char* kRouteBoth = R"(
[[route]]
mqtt = "devices/+/telemetry"
key = "devices/{device}/#"
to = { central = "telemetry", cloud = true }
)";

std::string TwoUpstreams(const std::string& central_extra = "", const std::string& cloud_extra = "",
                         const std::string& route = kRouteBoth) {
  return "[gateway]\nid = \"gw\"\n" + std::string(kCentral) + central_extra + kCloud + cloud_extra +
         route;
}

TEST_CASE("ParseConfig reads every key of a Kafka and an MQTT upstream") {
  TempDir dir;
  WriteFile(dir.File("cloud-pw"), std::string(kSecret) + "\n");
  WriteFile(dir.File("sasl-pw"), "k-pass\n");
  const std::string text = R"(
[gateway]
id = "plant-3"

[storage]
max_bytes = "1GiB"
retain_bytes = "64MiB"
retain_age_s = 86400

[upstream.central]
kind = "kafka"
brokers = "k1:9092,k2:9092"
compression = "zstd"
linger_ms = 50
batch_bytes = 262144
max_in_flight_events = 1000
retry_backoff_ms = 100
reconnect_max_ms = 2000
gap_topic = "plant.gaps"
sasl_password_file = ")" + dir.File("sasl-pw") +
                           R"("

[upstream.central.properties]
"security.protocol" = "SASL_SSL"

[upstream.cloud]
kind = "mqtt"
url = "ssl://cloud.example:8883"
protocol = "5"
username = "site-3"
password_file = ")" + dir.File("cloud-pw") +
                           R"("
keepalive_s = 45
reconnect_min_ms = 200
reconnect_max_ms = 9000
max_in_flight = 100
topic = "site/{gateway}/{mqtt_topic}"
gap_topic = "site/{gateway}/gaps"

[upstream.cloud.tls]
ca_file = "/etc/ssl/ca.pem"
cert_file = "/etc/sluice/client.crt"
key_file = "/etc/sluice/client.key"
verify = false

[[route]]
mqtt = "devices/+/telemetry"
key = "devices/{device}/#"
to = { central = "telemetry", cloud = "plants/{gateway}/{device}/telemetry" }
forward_retain = true

[[route]]
mqtt = "status/#"
to = { cloud = true }
)";
  Config c;
  Status s = Parse(text, &c);
  REQUIRE_MESSAGE(s.ok(), s.ToString());

  CHECK(c.storage.retain_bytes == 64ull << 20);
  CHECK(c.storage.retain_age == seconds(86400));
  CHECK(c.storage.cursors == std::vector<std::string>{"central", "cloud"});
  CHECK(c.legacy_rewrite.empty());

  REQUIRE(c.upstreams.size() == 2);
  const UpstreamConfig& central = c.upstreams[0];
  CHECK(central.name == "central");
  CHECK(central.kind == UpstreamKind::kKafka);
  CHECK(central.kafka.gateway_id == "plant-3");
  CHECK(central.kafka.brokers == "k1:9092,k2:9092");
  CHECK(central.kafka.compression == "zstd");
  CHECK(central.kafka.linger_ms == 50);
  CHECK(central.kafka.batch_bytes == 262144);
  CHECK(central.kafka.max_in_flight == 1000);
  CHECK(central.kafka.retry_backoff_ms == 100);
  CHECK(central.kafka.reconnect_max_ms == 2000);
  CHECK(central.kafka.gap_topic == "plant.gaps");
  CHECK(central.kafka.properties.at("security.protocol") == "SASL_SSL");
  CHECK(central.kafka.properties.at("sasl.password") == "k-pass");

  const UpstreamConfig& cloud = c.upstreams[1];
  CHECK(cloud.name == "cloud");
  CHECK(cloud.kind == UpstreamKind::kMqtt);
  CHECK(cloud.mqtt.name == "cloud");
  CHECK(cloud.mqtt.gateway_id == "plant-3");
  const connectors::MqttConnection& conn = cloud.mqtt.connection;
  CHECK(conn.url == "ssl://cloud.example:8883");
  CHECK(conn.tls);  // from the URL scheme
  CHECK(conn.protocol == connectors::MqttProtocol::kV5);
  CHECK(conn.client_id == "sluice-plant-3-cloud");
  CHECK(conn.username == "site-3");
  CHECK(conn.password == kSecret);
  CHECK(conn.keepalive == seconds(45));
  CHECK(conn.reconnect_min == milliseconds(200));
  CHECK(conn.reconnect_max == milliseconds(9000));
  CHECK(conn.ca_file == "/etc/ssl/ca.pem");
  CHECK(conn.cert_file == "/etc/sluice/client.crt");
  CHECK(conn.key_file == "/etc/sluice/client.key");
  CHECK_FALSE(conn.tls_verify);
  CHECK(cloud.mqtt.max_in_flight == 100);
  CHECK(cloud.mqtt.gap_topic == "site/{gateway}/gaps");

  CHECK(c.secret_files ==
        std::map<std::string, std::string>{{"upstream.central.sasl_password_file", "k-pass"},
                                           {"upstream.cloud.password_file", kSecret}});

  REQUIRE(c.routes.size() == 2);
  CHECK(c.routes[0].forward_retain);
  CHECK(c.routes[0].targets ==
        std::vector<RouteTarget>{{"central", "telemetry"},
                                 {"cloud", "plants/{gateway}/{device}/telemetry"}});
  CHECK_FALSE(c.routes[1].forward_retain);
  // `true` stands for the upstream's `topic`.
  CHECK(c.routes[1].targets == std::vector<RouteTarget>{{"cloud", "site/{gateway}/{mqtt_topic}"}});
  REQUIRE(c.mqtt.subscriptions.size() == 2);
  CHECK(c.mqtt.subscriptions[1].filter == "status/#");
}

TEST_CASE("An MQTT upstream takes the documented defaults") {
  Config c;
  Status s = Parse(TwoUpstreams(), &c);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  const connectors::MqttSinkOptions& mqtt = c.upstreams.at(1).mqtt;
  const connectors::MqttSinkOptions defaults;
  CHECK(mqtt.connection.client_id == "sluice-gw-cloud");
  CHECK_FALSE(mqtt.connection.tls);
  CHECK(mqtt.connection.tls_verify);
  CHECK(mqtt.connection.protocol == connectors::MqttProtocol::kV311);
  CHECK(mqtt.max_in_flight == 1000);
  CHECK(mqtt.max_in_flight == defaults.max_in_flight);
  CHECK(mqtt.gap_topic == "sluice/{gateway}/gaps");
  CHECK(c.upstreams.at(0).kafka.gap_topic == "sluice.gaps");
  CHECK(c.routes.at(0).targets.at(1).target == "{mqtt_topic}");
  CHECK_FALSE(c.routes.at(0).forward_retain);
}

TEST_CASE("Upstreams keep the order of the file, which is the order of the log's cursors") {
  Config c;
  Status s = Parse(R"(
[upstream.zeta]
kind = "kafka"
[upstream.alpha]
kind = "kafka"
[upstream.mid-1]
kind = "kafka"
[[route]]
mqtt = "a/#"
to = { mid-1 = "m", alpha = "a", zeta = "z" }
)",
                   &c);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  CHECK(c.storage.cursors == std::vector<std::string>{"zeta", "alpha", "mid-1"});
  CHECK(c.routes.at(0).targets ==
        std::vector<RouteTarget>{{"mid-1", "m"}, {"alpha", "a"}, {"zeta", "z"}});
}

TEST_CASE("ParseConfig validates upstream names and kinds") {
  CHECK(Contains(ErrorFor("[upstream.\"two words\"]\nkind = \"kafka\"\n" + std::string(kRouteBoth)),
                 "upstream 'two words': the name may contain only A-Z, a-z, 0-9, '_' and '-'"));
  CHECK(Contains(ErrorFor("[upstream." + std::string(65, 'u') + "]\nkind = \"kafka\"\n"),
                 "must be 1..64 characters long"));
  const std::string missing = ErrorFor("[upstream.central]\nbrokers = \"k:9092\"\n");
  CHECK(Contains(missing,
                 "test.toml:1:1: upstream.central.kind is required: \"kafka\", \"mqtt\", "
                 "\"kinesis\" or \"rabbitmq\""));
  CHECK(Contains(ErrorFor("[upstream.central]\nkind = \"kafak\"\n"),
                 "upstream.central.kind: 'kafak' is not one of kafka|mqtt|kinesis|rabbitmq (did "
                 "you mean "
                 "'kafka'?)"));
  CHECK(Contains(ErrorFor("[upstream]\ncentral = 5\n" + std::string(kRouteBoth)),
                 "upstream.central: expected a table ([upstream.central]), found an integer (5)"));
  CHECK(Contains(ErrorFor("[upstream]\n" + std::string(kRouteBoth)), "no [upstream.NAME] block"));
}

TEST_CASE("ParseConfig names a key of the other kind and suggests known keys") {
  CHECK(Contains(ErrorFor(TwoUpstreams("", "brokers = \"k:9092\"\n")),
                 "upstream.cloud.brokers: is a key of kind \"kafka\", but upstream.cloud is kind "
                 "\"mqtt\""));
  CHECK(Contains(ErrorFor(TwoUpstreams("url = \"tcp://x:1883\"\n")),
                 "upstream.central.url: is a key of kind \"mqtt\""));
  CHECK(Contains(ErrorFor(TwoUpstreams("gap_topik = \"g\"\n")),
                 "unknown key 'upstream.central.gap_topik' (did you mean "
                 "'upstream.central.gap_topic'?)"));
  CHECK(Contains(ErrorFor(TwoUpstreams("", "max_inflight = 5\n")),
                 "did you mean 'upstream.cloud.max_in_flight'?"));
  // TLS follows the URL on an upstream; there is no switch to disagree with it.
  CHECK(Contains(ErrorFor(TwoUpstreams("", "[upstream.cloud.tls]\nenabled = true\n")),
                 "unknown key 'upstream.cloud.tls.enabled'"));
}

// A Kinesis upstream with its credentials file; `keys` are added to its table.
std::string KinesisUpstream(const std::string& credentials, const std::string& keys = "") {
  return "[upstream.stream]\nkind = \"kinesis\"\nregion = \"eu-west-1\"\ncredentials_file = \"" +
         credentials + "\"\n" + keys;
}
constexpr const char* kRouteStream = R"(
[[route]]
mqtt = "devices/+/telemetry"
key = "devices/{device}/#"
to = { stream = "telemetry" }
)";

TEST_CASE("ParseConfig reads every key of a Kinesis upstream") {
  TempDir dir;
  const std::string creds = dir.File("aws");
  WriteFile(creds, std::string("aws_access_key_id = AKID\naws_secret_access_key = ") + kSecret +
                       "\naws_session_token = tok\n");
  WriteFile(dir.File("ca.pem"), "x");
  Config c;
  REQUIRE(Parse(KinesisUpstream(creds,
                                "endpoint = \"https://kinesis.local:4567/\"\n"
                                "gap_stream = \"gaps\"\nbatch_records = 100\n"
                                "reconnect_min_ms = 20\nreconnect_max_ms = 2000\n"
                                "request_timeout_ms = 3000\n[upstream.stream.tls]\n"
                                "ca_file = \"" +
                                    dir.File("ca.pem") + "\"\nverify = false\n") +
                    kRouteStream,
                &c)
              .ok());
  REQUIRE(c.upstreams.size() == 1);
  const UpstreamConfig& u = c.upstreams[0];
  CHECK(u.kind == UpstreamKind::kKinesis);
  CHECK(std::string(ToString(u.kind)) == "kinesis");
  CHECK(u.kinesis.name == "stream");
  CHECK(u.kinesis.region == "eu-west-1");
  CHECK(u.kinesis.endpoint == "https://kinesis.local:4567");
  CHECK(u.kinesis.credentials.access_key_id == "AKID");
  CHECK(u.kinesis.credentials.secret_access_key == kSecret);
  CHECK(u.kinesis.credentials.session_token == "tok");
  CHECK(u.kinesis.gap_stream == "gaps");
  CHECK(u.kinesis.batch_records == 100);
  CHECK(u.kinesis.retry_min == milliseconds(20));
  CHECK(u.kinesis.retry_max == milliseconds(2000));
  CHECK(u.kinesis.request_timeout == milliseconds(3000));
  CHECK(u.kinesis.ca_file == dir.File("ca.pem"));
  CHECK_FALSE(u.kinesis.tls_verify);
  REQUIRE(c.routes.size() == 1);
  CHECK(c.routes[0].targets[0].target == "telemetry");
  CHECK(c.secret_files.count("upstream.stream.credentials_file") == 1);

  Config d;
  REQUIRE(Parse(KinesisUpstream(creds) + kRouteStream, &d).ok());
  CHECK(d.upstreams[0].kinesis.endpoint.empty());  // the region's, made by the sink
  CHECK(d.upstreams[0].kinesis.tls_verify);
  CHECK(d.upstreams[0].kinesis.gap_stream == "sluice-gaps");
  CHECK(d.upstreams[0].kinesis.batch_records == 500);
}

TEST_CASE("A Kinesis upstream's keys are checked, and its credentials never shown") {
  TempDir dir;
  const std::string creds = dir.File("aws");
  WriteFile(creds,
            std::string("aws_access_key_id = AKID\naws_secret_access_key = ") + kSecret + "\n");
  CHECK(Contains(ErrorFor("[upstream.stream]\nkind = \"kinesis\"\n" + std::string(kRouteStream)),
                 "upstream.stream.region is required"));
  CHECK(Contains(ErrorFor("[upstream.stream]\nkind = \"kinesis\"\nregion = \"eu-west-1\"\n" +
                          std::string(kRouteStream)),
                 "upstream.stream.credentials_file is required"));
  CHECK(Contains(ErrorFor(KinesisUpstream(creds, "endpoint = \"http://x\"\n") + kRouteStream),
                 "upstream.stream.endpoint: 'http://x' must start with https://"));
  CHECK(Contains(ErrorFor("[upstream.stream]\nkind = \"kinesis\"\nregion = \"EU west\"\n"
                          "credentials_file = \"" +
                          creds + "\"\n" + kRouteStream),
                 "upstream.stream.region: 'EU west' is not a region name"));
  CHECK(Contains(ErrorFor(KinesisUpstream(creds, "batch_records = 501\n") + kRouteStream),
                 "upstream.stream.batch_records"));
  CHECK(Contains(ErrorFor(KinesisUpstream(creds, "url = \"tcp://x:1883\"\n") + kRouteStream),
                 "upstream.stream.url: is a key of kind \"mqtt\" or \"rabbitmq\", but "
                 "upstream.stream is kind \"kinesis\""));
  CHECK(Contains(ErrorFor(KinesisUpstream(creds, "brokers = \"k:9092\"\n") + kRouteStream),
                 "is a key of kind \"kafka\""));
  CHECK(Contains(
      ErrorFor(KinesisUpstream(creds, "[upstream.stream.tls]\ncert_file = \"x\"\n") + kRouteStream),
      "unknown key 'upstream.stream.tls.cert_file'"));
  CHECK(Contains(ErrorFor(TwoUpstreams("region = \"eu-west-1\"\n")),
                 "upstream.central.region: is a key of kind \"kinesis\""));
  CHECK(Contains(ErrorFor(TwoUpstreams("reconnect_min_ms = 5\n")),
                 "is a key of kind \"mqtt\" or \"kinesis\""));
  // A route's target is a stream name.
  const std::string bool_route = "[[route]]\nmqtt = \"a/#\"\nto = { stream = true }\n";
  CHECK(Contains(ErrorFor(KinesisUpstream(creds) + bool_route),
                 "is kind \"kinesis\" and needs a stream name here"));
  const std::string bad_route = "[[route]]\nmqtt = \"a/#\"\nto = { stream = \"a/b\" }\n";
  CHECK(Contains(ErrorFor(KinesisUpstream(creds) + bad_route), "Kinesis stream 'a/b' may contain"));
  // The credentials file: what is wrong, and never a value.
  WriteFile(creds, std::string("aws_access_key_id = AKID\n") + kSecret + "\n");
  const std::string garbled = ErrorFor(KinesisUpstream(creds) + kRouteStream);
  CHECK(Contains(
      garbled, "upstream.stream.credentials_file: file '" + creds + "' line 2 is not KEY = VALUE"));
  CHECK_FALSE(Contains(garbled, kSecret));
  WriteFile(creds, "aws_access_key_id = AKID\n");
  CHECK(Contains(ErrorFor(KinesisUpstream(creds) + kRouteStream), "sets no aws_secret_access_key"));
  // systemd's credentials directory.
  WriteFile(dir.File("kinesis"),
            std::string("aws_access_key_id = AKID\naws_secret_access_key = ") + kSecret + "\n");
  ConfigEnvironment env;
  env.credentials_directory = dir.path().string();
  Config c;
  REQUIRE(Parse(KinesisUpstream("${CREDENTIALS_DIRECTORY}/kinesis") + kRouteStream, &c, env).ok());
  CHECK(c.upstreams[0].kinesis.credentials.secret_access_key == kSecret);
}

TEST_CASE("route.to names known upstreams, suggesting the closest for a typo") {
  const std::string route = "[[route]]\nmqtt = \"a/#\"\nto = { centrl = \"t\", cloud = true }\n";
  const std::string msg = ErrorFor(TwoUpstreams("", "", route));
  CHECK(
      Contains(msg, "route[1].to.centrl: no upstream is named 'centrl' (did you mean 'central'?)"));
  CHECK(
      Contains(ErrorFor(TwoUpstreams("", "", "[[route]]\nmqtt = \"a/#\"\nto = { xyz = \"t\" }\n")),
               "no upstream is named 'xyz'; the upstreams are central, cloud"));
}

TEST_CASE("A route of the new form needs a non-empty `to`") {
  CHECK(Contains(ErrorFor(TwoUpstreams("", "", "[[route]]\nmqtt = \"a/#\"\n")),
                 "route[1].to is required"));
  CHECK(Contains(ErrorFor(TwoUpstreams("", "", "[[route]]\nmqtt = \"a/#\"\nto = {}\n")),
                 "route[1].to: names no upstream"));
  CHECK(Contains(ErrorFor(TwoUpstreams("", "", "[[route]]\nmqtt = \"a/#\"\nto = \"central\"\n")),
                 "route[1].to: expected a table, found a string"));
  CHECK(Contains(ErrorFor(TwoUpstreams("", "", std::string(kRouteBoth) + "forward_retain = 1\n")),
                 "route[1].forward_retain: expected a boolean"));
  CHECK(Contains(ErrorFor(TwoUpstreams("", "", std::string(kRouteBoth) + "too = 1\n")),
                 "unknown key 'route[1].too' (did you mean 'route[1].to'?)"));
}

TEST_CASE("A Kafka target is a valid Kafka topic name") {
  auto route = [](const std::string& target) {
    return "[[route]]\nmqtt = \"a/#\"\nto = { central = " + target + ", cloud = true }\n";
  };
  CHECK(Contains(ErrorFor(TwoUpstreams("", "", route("\"has space\""))),
                 "route[1].to.central: Kafka topic 'has space' may contain only"));
  CHECK(Contains(ErrorFor(TwoUpstreams("", "", route("\"" + std::string(250, 't') + "\""))),
                 "at most 249"));
  CHECK(Contains(ErrorFor(TwoUpstreams("", "", route("true"))),
                 "route[1].to.central: upstream.central is kind \"kafka\" and needs a topic name"));
  CHECK(Contains(ErrorFor(TwoUpstreams("", "", route("5"))),
                 "route[1].to.central: expected a string, found an integer (5)"));
  CHECK(Contains(ErrorFor(TwoUpstreams("gap_topic = \"bad/gaps\"\n")),
                 "upstream.central.gap_topic: 'bad/gaps' may contain only"));
}

TEST_CASE("An MQTT topic template may use {gateway}, {mqtt_topic} and its route's capture") {
  auto route = [](const std::string& target, const std::string& key = "devices/{device}/#") {
    return "[[route]]\nmqtt = \"devices/+/t\"\nkey = \"" + key +
           "\"\nto = { central = \"t\", cloud = " + target + " }\n";
  };
  Config c;
  Status s = Parse(TwoUpstreams("", "", route("\"s/{gateway}/{device}/{mqtt_topic}\"")), &c);
  CHECK_MESSAGE(s.ok(), s.ToString());

  std::string msg = ErrorFor(TwoUpstreams("", "", route("\"s/{devce}\"")));
  CHECK(Contains(msg,
                 "route[1].to.cloud: 's/{devce}': placeholder {devce} is not one of "
                 "{gateway}, {mqtt_topic}, {device} (did you mean {device}?)"));
  CHECK(Contains(msg, "key 'devices/{device}/#'"));
  msg = ErrorFor(TwoUpstreams("", "", route("\"s/{device}\"", "devices/+/#")));
  CHECK(Contains(msg, "placeholder {device} is not one of {gateway}, {mqtt_topic}"));
  CHECK(Contains(ErrorFor(TwoUpstreams("", "", route("\"s/+/x\""))), "no wildcards"));
  CHECK(Contains(ErrorFor(TwoUpstreams("", "", route("\"s/#\""))), "no wildcards"));
  CHECK(Contains(ErrorFor(TwoUpstreams("", "", route("\"s/{device\""))), "without its '}'"));
  CHECK(Contains(ErrorFor(TwoUpstreams("", "", route("\"s/device}\""))), "without its '{'"));
  CHECK(Contains(ErrorFor(TwoUpstreams("", "", route("\"s/{}\""))), "is not a placeholder"));
  CHECK(Contains(ErrorFor(TwoUpstreams("", "", route("\"$SYS/x\""))), "begins with '$'"));
  CHECK(Contains(ErrorFor(TwoUpstreams("", "", route("\"\""))),
                 "route[1].to.cloud: must not be empty"));
  CHECK(Contains(ErrorFor(TwoUpstreams("", "", route("false"))),
                 "route[1].to.cloud: false feeds nothing"));

  // `true` takes the upstream's template, which must suit the route that uses it.
  msg = ErrorFor(TwoUpstreams("", "topic = \"site/{machine}\"\n", route("true")));
  CHECK(Contains(msg, "route[1].to.cloud: true takes upstream.cloud.topic, which"));
  CHECK(Contains(msg, "placeholder {machine}"));
  REQUIRE(Parse(TwoUpstreams("", "topic = \"site/{device}\"\n", route("true")), &c).ok());
  CHECK(c.routes.at(0).targets.at(1).target == "site/{device}");
  // What no route could make right is named at the upstream.
  CHECK(Contains(ErrorFor(TwoUpstreams("", "topic = \"site/#\"\n")),
                 "upstream.cloud.topic: 'site/#' contains '+' or '#'"));
  CHECK(Contains(ErrorFor(TwoUpstreams("", "gap_topic = \"g/{mqtt_topic}\"\n")),
                 "upstream.cloud.gap_topic: 'g/{mqtt_topic}': placeholder {mqtt_topic} is not "
                 "one of {gateway}"));
}

TEST_CASE("An MQTT upstream's URL scheme decides TLS, and TLS keys need a TLS URL") {
  const std::string base =
      "[upstream.central]\nkind = \"kafka\"\n[upstream.cloud]\nkind = \"mqtt\"\n";
  auto with = [&](const std::string& cloud) { return base + cloud + kRouteBoth; };
  CHECK(Contains(ErrorFor(with("url = \"ws://cloud:80\"\n")),
                 "upstream.cloud.url: 'ws://cloud:80' must start with tcp://, mqtt://, ssl:// or "
                 "mqtts://"));
  CHECK(
      Contains(ErrorFor(with("url = \"ssl://\"\n")), "upstream.cloud.url: 'ssl://' names no host"));
  CHECK(Contains(ErrorFor(with("url = \"tcp://cloud:1883\"\n[upstream.cloud.tls]\nca_file = "
                               "\"/ca.pem\"\n")),
                 "upstream.cloud.tls.ca_file: is set but upstream.cloud.url 'tcp://cloud:1883' is "
                 "not a TLS URL; use ssl:// or mqtts://"));
  CHECK(Contains(ErrorFor(with("url = \"mqtt://cloud:1883\"\n[upstream.cloud.tls]\nverify = "
                               "false\n")),
                 "upstream.cloud.tls.verify: is set but"));
  for (const char* url : {"ssl://cloud:8883", "mqtts://cloud:8883"}) {
    CAPTURE(url);
    Config c;
    REQUIRE(Parse(with(std::string("url = \"") + url + "\"\n"), &c).ok());
    CHECK(c.upstreams.at(1).mqtt.connection.tls);
  }
  Config c;
  REQUIRE(Parse(with("url = \"mqtt://cloud:1883\"\n"), &c).ok());
  CHECK_FALSE(c.upstreams.at(1).mqtt.connection.tls);
}

TEST_CASE("An MQTT upstream's password comes from the file or the key, never shown in errors") {
  TempDir dir;
  WriteFile(dir.File("pw"), "from-file\n");
  ConfigEnvironment env;
  env.credentials_directory = dir.path().string();
  Config c;
  Status s = Parse(TwoUpstreams("",
                                "username = \"u\"\npassword_file = "
                                "\"${CREDENTIALS_DIRECTORY}/pw\"\n"),
                   &c, env);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  CHECK(c.upstreams.at(1).mqtt.connection.password == "from-file");
  CHECK(c.secret_files.at("upstream.cloud.password_file") == "from-file");

  std::string msg =
      ErrorFor(TwoUpstreams("", "username = \"u\"\npassword = \"" + std::string(kSecret) +
                                    "\"\npassword_file = \"" + dir.File("pw") + "\"\n"));
  CHECK(Contains(msg,
                 "upstream.cloud.password and upstream.cloud.password_file are mutually "
                 "exclusive"));
  CHECK_FALSE(Contains(msg, kSecret));
  msg = ErrorFor(TwoUpstreams("", "password = \"" + std::string(kSecret) + "\"\n"));
  CHECK(Contains(msg, "upstream.cloud.password: a password needs upstream.cloud.username"));
  CHECK_FALSE(Contains(msg, kSecret));
  msg = ErrorFor(TwoUpstreams("", "username = \"u\"\npassword = 918273645\n"));
  CHECK(Contains(msg, "upstream.cloud.password: expected a string, found an integer"));
  CHECK_FALSE(Contains(msg, "918273645"));
  msg = ErrorFor(TwoUpstreams("", "username = \"u\"\npassword_file = \"/nonexistent/pw\"\n"));
  CHECK(Contains(msg, "upstream.cloud.password_file: cannot open '/nonexistent/pw'"));
  msg = ErrorFor(TwoUpstreams("",
                              "username = \"u\"\npassword_file = "
                              "\"${CREDENTIALS_DIRECTORY}/pw\"\n"));
  CHECK(Contains(msg, "upstream.cloud.password_file"));
  CHECK(Contains(msg, "LoadCredential="));
}

// A RabbitMQ upstream beside the Kafka one, fed by the same route.
std::string WithRabbit(const std::string& rabbit_lines, const std::string& target = "telemetry") {
  return std::string(kCentral) + "[upstream.rabbit]\nkind = \"rabbitmq\"\n" + rabbit_lines +
         "\n[[route]]\nmqtt = \"devices/+/telemetry\"\nkey = \"devices/{device}/#\"\n"
         "to = { central = \"telemetry\", rabbit = \"" +
         target + "\" }\n";
}

TEST_CASE("A RabbitMQ upstream reads its keys, its defaults, and a password file") {
  Config d;
  Status s = Parse(WithRabbit(""), &d);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  const connectors::AmqpSinkOptions& def = d.upstreams.at(1).rabbitmq;
  CHECK(d.upstreams.at(1).kind == UpstreamKind::kRabbitmq);
  CHECK(std::string(ToString(UpstreamKind::kRabbitmq)) == "rabbitmq");
  CHECK(def.endpoint.url == "amqp://127.0.0.1:5672");
  CHECK(def.endpoint.vhost == "/");
  CHECK(def.endpoint.username == "guest");
  CHECK(def.endpoint.tls_verify);
  CHECK(def.exchange.empty());
  CHECK(def.max_in_flight == 1000);
  CHECK(def.gap_routing_key == "sluice.gaps");
  CHECK(d.routes.at(0).targets.at(1).target == "telemetry");

  TempDir dir;
  WriteFile(dir.File("pw"), "from-file\n");
  Config c;
  s = Parse(WithRabbit("url = \"amqps://rabbit.example:5671\"\nvhost = \"site\"\n"
                       "username = \"sluice\"\npassword_file = \"" +
                           dir.File("pw") +
                           "\"\nheartbeat_s = 10\nconnect_timeout_ms = 2000\n"
                           "reconnect_min_ms = 50\nreconnect_max_ms = 900\nexchange = \"events\"\n"
                           "max_in_flight = 7\ngap_routing_key = \"gaps.{gateway}\"\n"
                           "[upstream.rabbit.tls]\nca_file = \"" +
                           dir.File("pw") + "\"\nverify = false\n",
                       "site.{device}"),
            &c);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  const connectors::AmqpSinkOptions& o = c.upstreams.at(1).rabbitmq;
  CHECK(o.name == "rabbit");
  CHECK(o.endpoint.url == "amqps://rabbit.example:5671");
  CHECK(o.endpoint.vhost == "site");
  CHECK(o.endpoint.username == "sluice");
  CHECK(o.endpoint.password == "from-file");
  CHECK(c.secret_files.at("upstream.rabbit.password_file") == "from-file");
  CHECK(o.endpoint.heartbeat == seconds(10));
  CHECK(o.endpoint.connect_timeout == milliseconds(2000));
  CHECK(o.endpoint.reconnect_min == milliseconds(50));
  CHECK(o.endpoint.reconnect_max == milliseconds(900));
  CHECK_FALSE(o.endpoint.tls_verify);
  CHECK(o.endpoint.ca_file == dir.File("pw"));
  CHECK(o.exchange == "events");
  CHECK(o.max_in_flight == 7);
  CHECK(o.gap_routing_key == "gaps.{gateway}");
  CHECK(c.routes.at(0).targets.at(1).target == "site.{device}");
}

TEST_CASE(
    "A RabbitMQ upstream refuses secrets in the URL, TLS keys without amqps://, and a bare "
    "user") {
  CHECK(Contains(ErrorFor(WithRabbit("url = \"amqp://u:" + std::string(kSecret) + "@h\"\n")),
                 "upstream.rabbit.url: "));
  CHECK(Contains(ErrorFor(WithRabbit("url = \"amqp://u:p@h\"\n")),
                 "holds credentials; set username and password_file instead"));
  CHECK(Contains(ErrorFor(WithRabbit("url = \"amqp://h/vh\"\n")), "set vhost instead"));
  CHECK(Contains(ErrorFor(WithRabbit("url = \"tcp://h:5672\"\n")),
                 "must start with amqp:// or amqps://"));
  CHECK(Contains(ErrorFor(WithRabbit("url = \"amqp://h:99999\"\n")), "bad port"));
  CHECK(Contains(ErrorFor(WithRabbit("[upstream.rabbit.tls]\nverify = false\n")),
                 "upstream.rabbit.tls.verify: is set but upstream.rabbit.url "
                 "'amqp://127.0.0.1:5672' is not a TLS URL; use amqps://"));
  CHECK(Contains(ErrorFor(WithRabbit("username = \"sluice\"\n")),
                 "upstream.rabbit.username: 'sluice' needs upstream.rabbit.password_file"));
  const std::string both = ErrorFor(WithRabbit(
      "username = \"u\"\npassword = \"" + std::string(kSecret) + "\"\npassword_file = \"/x\"\n"));
  CHECK(Contains(both, "mutually exclusive"));
  CHECK_FALSE(Contains(both, kSecret));
  CHECK(Contains(ErrorFor(WithRabbit("url = \"amqps://h\"\n[upstream.rabbit.tls]\n"
                                     "cert_file = \"/etc/hostname\"\n")),
                 "upstream.rabbit.tls.cert_file: needs upstream.rabbit.tls.key_file too"));
  CHECK(Contains(ErrorFor(WithRabbit("gap_routing_key = \"g.{device}\"\n")),
                 "upstream.rabbit.gap_routing_key: 'g.{device}': placeholder {device} is not one "
                 "of {gateway}"));
  CHECK(Contains(ErrorFor(WithRabbit("", "t.{devce}")), "(did you mean {device}?)"));
  CHECK(Contains(ErrorFor(WithRabbit("", std::string(256, 'r'))), "longer than AMQP's 255 bytes"));
  // `true` stands for a default only on an MQTT upstream.
  const std::string flag = std::string(kCentral) +
                           "[upstream.rabbit]\nkind = \"rabbitmq\"\n[[route]]\nmqtt = \"d/#\"\n"
                           "to = { central = \"t\", rabbit = true }\n";
  CHECK(Contains(ErrorFor(flag), "is kind \"rabbitmq\" and needs a routing key here"));
}

TEST_CASE(
    "Keys of other kinds given to a RabbitMQ upstream, and its keys given to others, are "
    "named") {
  CHECK(Contains(ErrorFor(WithRabbit("brokers = \"k:9092\"\n")),
                 "upstream.rabbit.brokers: is a key of kind \"kafka\", but upstream.rabbit is kind "
                 "\"rabbitmq\""));
  CHECK(Contains(ErrorFor(WithRabbit("client_id = \"c\"\n")),
                 "upstream.rabbit.client_id: is a key of kind \"mqtt\""));
  CHECK(Contains(ErrorFor(WithRabbit("gap_topic = \"g\"\n")),
                 "upstream.rabbit.gap_topic: is a key of kind \"kafka\" or \"mqtt\""));
  CHECK(Contains(ErrorFor(TwoUpstreams("vhost = \"v\"\n")),
                 "upstream.central.vhost: is a key of kind \"rabbitmq\", but upstream.central is "
                 "kind \"kafka\""));
  CHECK(Contains(ErrorFor(TwoUpstreams("url = \"tcp://x:1883\"\n")),
                 "upstream.central.url: is a key of kind \"mqtt\" or \"rabbitmq\""));
}

TEST_CASE("Two MQTT connections with one client id on one broker are refused") {
  const std::string base = "[gateway]\nid = \"gw\"\n[mqtt]\nurl = \"tcp://b:1883\"\n";
  std::string msg = ErrorFor(base + kCentral +
                             "[upstream.cloud]\nkind = \"mqtt\"\nurl = \"tcp://b:1883\"\n"
                             "client_id = \"sluice-gw\"\n" +
                             kRouteBoth);
  CHECK(Contains(msg,
                 "upstream.cloud.client_id: 'sluice-gw' is also mqtt.client_id on the same "
                 "broker"));
  // The default client ids differ, so a loop back to the local broker works unchanged.
  Config c;
  CHECK(Parse(base + kCentral + "[upstream.cloud]\nkind = \"mqtt\"\nurl = \"tcp://b:1883\"\n" +
                  kRouteBoth,
              &c)
            .ok());
}

TEST_CASE("A Kafka upstream checks its properties and reads sasl_password_file") {
  std::string msg = ErrorFor(TwoUpstreams("[upstream.central.properties]\nacks = \"1\"\n"));
  CHECK(Contains(msg, "upstream.central.properties 'acks' cannot be set here"));
  msg = ErrorFor(TwoUpstreams("[upstream.central.properties]\n\"sasl.pasword\" = \"" +
                              std::string(kSecret) + "\"\n"));
  CHECK(Contains(msg, "kafka property 'sasl.pasword' is not a librdkafka property"));
  CHECK(Contains(msg, "did you mean 'sasl.password'?"));
  CHECK_FALSE(Contains(msg, kSecret));
  CHECK(Contains(ErrorFor(TwoUpstreams("brokers = \"http://k:9092\"\n")),
                 "upstream.central.brokers"));
  CHECK(Contains(ErrorFor(TwoUpstreams("linger_ms = -1\n")),
                 "upstream.central.linger_ms: -1 is out of range"));

  TempDir dir;
  WriteFile(dir.File("sasl"), "k-pass\n");
  msg = ErrorFor(TwoUpstreams("sasl_password_file = \"" + dir.File("sasl") +
                              "\"\n[upstream.central.properties]\n\"sasl.password\" = \"x\"\n"));
  CHECK(Contains(msg,
                 "upstream.central.sasl_password_file and upstream.central.properties "
                 "'sasl.password' are mutually exclusive"));
}

TEST_CASE("Every upstream is fed by a route") {
  const std::string msg =
      ErrorFor(TwoUpstreams("", "", "[[route]]\nmqtt = \"a/#\"\nto = { central = \"t\" }\n"));
  CHECK(Contains(msg, "test.toml:7:1: upstream.cloud is fed by no route"));
  CHECK(Contains(msg, "to = { cloud = ... }"));
}

TEST_CASE("storage.retain_bytes stays below max_bytes; retain_age_s needs retain_bytes") {
  Config c;
  Status s = Parse(std::string("[storage]\nretain_bytes = 1048576\n") + TwoUpstreams(), &c);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  CHECK(c.storage.retain_bytes == 1048576);
  CHECK(c.storage.retain_age == seconds(0));
  CHECK(Contains(
      ErrorFor("[storage]\nmax_bytes = \"64MiB\"\nretain_bytes = \"64MiB\"\n" + TwoUpstreams()),
      "storage.retain_bytes: 64 MiB must be less than storage.max_bytes (64 MiB)"));
  CHECK(Contains(ErrorFor("[storage]\nretain_bytes = \"lots\"\n" + TwoUpstreams()),
                 "storage.retain_bytes: 'lots' is not a size"));
  CHECK(Contains(ErrorFor("[storage]\nretain_age_s = 3600\n" + TwoUpstreams()),
                 "storage.retain_age_s: keeps nothing while storage.retain_bytes is 0"));
  CHECK(Contains(ErrorFor("[storage]\nretain_bytes = 1\nretain_age_s = -1\n" + TwoUpstreams()),
                 "storage.retain_age_s: -1 is out of range"));
}

// ---- The old form ----

constexpr const char* kCommon = R"([gateway]
id = "gw"
[storage]
path = "/data/events.db"
max_bytes = "256MiB"
[mqtt]
url = "tcp://10.0.0.1:1883"
username = "u"
password = "p"
)";
constexpr const char* kLegacyKafka = R"(
[kafka]
brokers = "k1:9092,k2:9092"
linger_ms = 20
max_in_flight_events = 1234
[kafka.properties]
"security.protocol" = "SSL"
socket.keepalive.enable = true
)";
constexpr const char* kLegacyRoutes = R"(
[[route]]
mqtt = "devices/+/telemetry"
kafka_topic = "telemetry"
key = "devices/{device}/#"
qos = 0

[[route]]
mqtt = "status/#"
kafka_topic = "status"
retained = "skip"
)";

// Everything a configuration says, compared; legacy_rewrite apart.
void CheckSame(const Config& a, const Config& b) {
  CHECK(a.gateway.id == b.gateway.id);
  CHECK(a.gateway.log_level == b.gateway.log_level);
  CHECK(a.gateway.stop_timeout_s == b.gateway.stop_timeout_s);
  CHECK(a.storage.path == b.storage.path);
  CHECK(a.storage.max_bytes == b.storage.max_bytes);
  CHECK(a.storage.overflow == b.storage.overflow);
  CHECK(a.storage.sync == b.storage.sync);
  CHECK(a.storage.retain_bytes == b.storage.retain_bytes);
  CHECK(a.storage.retain_age == b.storage.retain_age);
  CHECK(a.storage.cursors == b.storage.cursors);
  CHECK(a.writer.commit_interval == b.writer.commit_interval);
  CHECK(a.writer.commit_max_events == b.writer.commit_max_events);
  CHECK(a.writer.queue_capacity == b.writer.queue_capacity);
  const auto same_connection = [](const connectors::MqttConnection& x,
                                  const connectors::MqttConnection& y) {
    CHECK(x.url == y.url);
    CHECK(x.protocol == y.protocol);
    CHECK(x.client_id == y.client_id);
    CHECK(x.username == y.username);
    CHECK(x.password == y.password);
    CHECK(x.tls == y.tls);
    CHECK(x.ca_file == y.ca_file);
    CHECK(x.cert_file == y.cert_file);
    CHECK(x.key_file == y.key_file);
    CHECK(x.tls_verify == y.tls_verify);
    CHECK(x.keepalive == y.keepalive);
    CHECK(x.reconnect_min == y.reconnect_min);
    CHECK(x.reconnect_max == y.reconnect_max);
  };
  same_connection(a.mqtt.connection, b.mqtt.connection);
  CHECK(a.mqtt.max_event_bytes == b.mqtt.max_event_bytes);
  REQUIRE(a.mqtt.subscriptions.size() == b.mqtt.subscriptions.size());
  for (size_t i = 0; i < a.mqtt.subscriptions.size(); ++i) {
    CHECK(a.mqtt.subscriptions[i].filter == b.mqtt.subscriptions[i].filter);
    CHECK(a.mqtt.subscriptions[i].qos == b.mqtt.subscriptions[i].qos);
    CHECK(a.mqtt.subscriptions[i].ingest_retained == b.mqtt.subscriptions[i].ingest_retained);
  }
  REQUIRE(a.upstreams.size() == b.upstreams.size());
  for (size_t i = 0; i < a.upstreams.size(); ++i) {
    const UpstreamConfig& x = a.upstreams[i];
    const UpstreamConfig& y = b.upstreams[i];
    CHECK(x.name == y.name);
    CHECK(x.kind == y.kind);
    CHECK(x.kafka.brokers == y.kafka.brokers);
    CHECK(x.kafka.compression == y.kafka.compression);
    CHECK(x.kafka.linger_ms == y.kafka.linger_ms);
    CHECK(x.kafka.batch_bytes == y.kafka.batch_bytes);
    CHECK(x.kafka.max_in_flight == y.kafka.max_in_flight);
    CHECK(x.kafka.retry_backoff_ms == y.kafka.retry_backoff_ms);
    CHECK(x.kafka.reconnect_max_ms == y.kafka.reconnect_max_ms);
    CHECK(x.kafka.gateway_id == y.kafka.gateway_id);
    CHECK(x.kafka.gap_topic == y.kafka.gap_topic);
    CHECK(x.kafka.properties == y.kafka.properties);
    CHECK(x.mqtt.name == y.mqtt.name);
    same_connection(x.mqtt.connection, y.mqtt.connection);
    CHECK(x.mqtt.max_in_flight == y.mqtt.max_in_flight);
    CHECK(x.mqtt.gap_topic == y.mqtt.gap_topic);
    CHECK(x.mqtt.gateway_id == y.mqtt.gateway_id);
  }
  CHECK(a.metrics.enabled == b.metrics.enabled);
  CHECK(a.metrics.listen == b.metrics.listen);
  REQUIRE(a.routes.size() == b.routes.size());
  for (size_t i = 0; i < a.routes.size(); ++i) {
    CHECK(a.routes[i].mqtt_filter == b.routes[i].mqtt_filter);
    CHECK(a.routes[i].key_pattern == b.routes[i].key_pattern);
    CHECK(a.routes[i].qos == b.routes[i].qos);
    CHECK(a.routes[i].retained == b.routes[i].retained);
    CHECK(a.routes[i].forward_retain == b.routes[i].forward_retain);
    CHECK(a.routes[i].targets == b.routes[i].targets);
  }
  CHECK(a.secret_files == b.secret_files);
}

TEST_CASE("The old form is one Kafka upstream named kafka, and its rewrite says so exactly") {
  Config legacy;
  Status s = Parse(std::string(kCommon) + kLegacyKafka + kLegacyRoutes, &legacy);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  REQUIRE(legacy.upstreams.size() == 1);
  CHECK(legacy.upstreams[0].name == "kafka");
  CHECK(legacy.storage.cursors == std::vector<std::string>{"kafka"});
  CHECK(legacy.routes.at(0).targets == std::vector<RouteTarget>{{"kafka", "telemetry"}});
  CHECK(legacy.legacy_rewrite == R"([upstream.kafka]
kind = "kafka"
brokers = "k1:9092,k2:9092"
linger_ms = 20
max_in_flight_events = 1234

[upstream.kafka.properties]
"security.protocol" = "SSL"
"socket.keepalive.enable" = true

[[route]]
mqtt = "devices/+/telemetry"
to = { kafka = "telemetry" }
key = "devices/{device}/#"
qos = 0

[[route]]
mqtt = "status/#"
to = { kafka = "status" }
retained = "skip"
)");

  // The rewrite in place of [kafka] and the routes gives the same configuration.
  Config rewritten;
  s = Parse(std::string(kCommon) + "\n" + legacy.legacy_rewrite, &rewritten);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  CHECK(rewritten.legacy_rewrite.empty());
  CheckSame(legacy, rewritten);
}

TEST_CASE("A configuration of routes alone is the old form with Kafka's defaults") {
  const std::string routes = "[[route]]\nmqtt = \"a/#\"\nkafka_topic = \"a\"\n";
  Config legacy;
  REQUIRE(Parse(routes, &legacy).ok());
  CHECK(
      legacy.legacy_rewrite ==
      "[upstream.kafka]\nkind = \"kafka\"\n\n[[route]]\nmqtt = \"a/#\"\nto = { kafka = \"a\" }\n");
  Config rewritten;
  REQUIRE(Parse(legacy.legacy_rewrite, &rewritten).ok());
  CheckSame(legacy, rewritten);
}

TEST_CASE("The old form's rewrite keeps secret files by name and never shows a secret") {
  TempDir dir;
  WriteFile(dir.File("sasl"), "k-pass\n");
  Config legacy;
  Status s = Parse("[kafka]\nsasl_password_file = \"" + dir.File("sasl") +
                       "\"\n[kafka.properties]\n\"ssl.key.password\" = \"" + kSecret +
                       "\"\n\"sasl.username\" = \"user\"\n" + kLegacyRoutes,
                   &legacy);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  CHECK(Contains(legacy.legacy_rewrite, "sasl_password_file = \"" + dir.File("sasl") + "\""));
  CHECK(Contains(legacy.legacy_rewrite,
                 "# \"ssl.key.password\" = ...  (as in [kafka.properties]; not shown)"));
  CHECK(Contains(legacy.legacy_rewrite, "\"sasl.username\" = \"user\""));
  CHECK_FALSE(Contains(legacy.legacy_rewrite, kSecret));
  CHECK_FALSE(Contains(legacy.legacy_rewrite, "k-pass"));
  CHECK(legacy.secret_files ==
        std::map<std::string, std::string>{{"kafka.sasl_password_file", "k-pass"}});
}

TEST_CASE("Mixing the old form with the new one is an error that gives the rewrite") {
  SUBCASE("[kafka] beside [upstream.*]") {
    const std::string msg =
        ErrorFor(std::string("[kafka]\nbrokers = \"k1:9092\"\n[kafka.properties]\n"
                             "\"sasl.pasword\" = \"") +
                 kSecret + "\"\n" + kCentral + kCloud + kRouteBoth);
    CHECK(Contains(msg,
                   "test.toml:1:1: kafka: [kafka] is the old form's one upstream and cannot "
                   "be mixed with [upstream.*]"));
    CHECK(Contains(msg, "[upstream.kafka]\nkind = \"kafka\"\nbrokers = \"k1:9092\"\n"));
    // Before validation a password may sit under any name: no property value is shown.
    CHECK(Contains(msg, "# \"sasl.pasword\" = ...  (as in [kafka.properties]; not shown)"));
    CHECK_FALSE(Contains(msg, kSecret));
  }
  SUBCASE("route.kafka_topic beside [upstream.*]") {
    const std::string msg =
        ErrorFor(TwoUpstreams("", "", "[[route]]\nmqtt = \"a/#\"\nkafka_topic = \"telemetry\"\n"));
    CHECK(Contains(msg, "route[1].kafka_topic: belongs to the old form"));
    CHECK(Contains(msg, "write to = { central = \"telemetry\" }"));
  }
  SUBCASE("kafka_topic and to in one route") {
    const std::string msg =
        ErrorFor(TwoUpstreams("", "", std::string(kRouteBoth) + "kafka_topic = \"t\"\n"));
    CHECK(Contains(msg, "route[1].kafka_topic: the old form of route[1].to; set one of them"));
  }
  SUBCASE("route.to in a file of the old form") {
    const std::string msg = ErrorFor(std::string(kLegacyKafka) + kLegacyRoutes +
                                     "[[route]]\nmqtt = \"x/#\"\nto = { kafka = \"x\" }\n");
    CHECK(Contains(msg,
                   "route[3].to: names upstreams, but no [upstream.NAME] block is "
                   "configured; the old form"));
    CHECK(Contains(msg, "[upstream.kafka]\nkind = \"kafka\"\nbrokers = \"k1:9092,k2:9092\""));
    CHECK(Contains(msg, "to = { kafka = \"telemetry\" }"));
  }
  SUBCASE("route.to without any upstream") {
    const std::string msg = ErrorFor("[[route]]\nmqtt = \"x/#\"\nto = { central = \"x\" }\n");
    CHECK(
        Contains(msg, "route[1].to: names upstreams, but no [upstream.NAME] block is configured"));
    CHECK_FALSE(Contains(msg, "old form"));
  }
  SUBCASE("gap_topic is a key of the new form only") {
    CHECK(Contains(ErrorFor(std::string("[kafka]\ngap_topic = \"g\"\n") + kLegacyRoutes),
                   "unknown key 'kafka.gap_topic'"));
  }
}

}  // namespace
}  // namespace sluice::gateway
